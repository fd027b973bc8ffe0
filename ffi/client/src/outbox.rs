//! The write side of a connection: callers append their frames to one
//! buffer, and the first caller to find nobody writing writes the buffer
//! itself, with non-blocking `send` calls, taking along what other callers
//! append meanwhile. Only when the socket's send buffer is full does the rest
//! go to the connection's writer task, which waits for the socket to take it.
//!
//! A request thus costs no hand-over to another task (a wake-up of another
//! thread, often) and no allocation of its own, and requests made at the
//! same time share `send` calls. Bytes are written in the order they were
//! appended, and a frame is never split between two writers: the buffer has
//! at most one writer at a time (`writing`).

use std::io::Write as _;
use std::net::TcpStream as StdTcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_channel::{Receiver, Sender};
use async_io::Async;
use event_listener::Event;
use futures_lite::io::AsyncWriteExt;

use mq_protocol::frame::{EncodeError, RemotingCommand};

/// How many times a caller takes on what others appended while it wrote,
/// before it leaves the rest to the writer task (so that one caller does not
/// write for everyone for long).
const CALLER_ROUNDS: usize = 4;

/// Bytes queued beyond which callers wait for the writer task to make room
/// (backpressure on a socket the server does not drain).
const MAX_PENDING: usize = 4 * 1024 * 1024;

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum OutboxError {
    /// The connection is closed.
    Closed,
    /// The command cannot be encoded.
    Encode(EncodeError),
}

#[derive(Default)]
struct State {
    /// Bytes waiting to be written, whole frames.
    pending: Vec<u8>,
    /// An empty buffer to swap in for `pending` (its allocation reused).
    spare: Vec<u8>,
    /// Someone (a caller or the writer task) is writing: what is appended now
    /// is theirs to write.
    writing: bool,
    /// A caller found the socket full and left the writing (and `writing`)
    /// to the writer task.
    handed_over: bool,
    /// Callers waiting for `pending` to shrink below [`MAX_PENDING`]
    /// (`room` is notified only when there are some).
    waiting_for_room: usize,
    /// No more frames are taken; the writer task writes what is pending and
    /// shuts the socket.
    closed: bool,
}

/// A connection's outgoing frames.
pub(crate) struct Outbox {
    socket: Arc<Async<StdTcpStream>>,
    state: Mutex<State>,
    /// Tells the writer task there is work (or that the outbox closed).
    kick: Sender<()>,
    /// Notified, when callers wait for room, after every write and at close.
    room: Event,
}

impl Outbox {
    /// An outbox writing to `socket`, and the receiver its writer task
    /// ([`Outbox::run_writer`]) waits on.
    pub(crate) fn new(socket: Arc<Async<StdTcpStream>>) -> (Arc<Self>, Receiver<()>) {
        let (kick, kicked) = async_channel::bounded(1);
        let outbox = Outbox {
            socket,
            state: Mutex::default(),
            kick,
            room: Event::new(),
        };
        (Arc::new(outbox), kicked)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kick(&self) {
        // Full means the writer task is told already.
        let _ = self.kick.try_send(());
    }

    /// Queues `cmd`'s frame and, if nobody is writing, writes what is queued
    /// without blocking. Waits only when [`MAX_PENDING`] bytes are queued.
    pub(crate) async fn send(&self, cmd: &RemotingCommand) -> Result<(), OutboxError> {
        self.send_with_body(cmd, &cmd.body).await
    }

    /// [`send`](Self::send) with `body` in place of the command's own.
    pub(crate) async fn send_with_body(
        &self,
        cmd: &RemotingCommand,
        body: &[u8],
    ) -> Result<(), OutboxError> {
        self.wait_for_room().await;
        if !self.append(cmd, body)? {
            return Ok(());
        }
        // This caller writes now. If it is dropped before it has (a caller
        // that stopped waiting), the writer task writes instead.
        let turn = WriteTurn(Some(self));
        // Let the other tasks that are ready append their frames first: one
        // write for all of them. Not for a one-way frame: nobody waits for an
        // answer to it, and its sender may be about to go (an END_TRANSACTION
        // answering a check, just before the producer shuts down), so it
        // goes out at once.
        if !cmd.is_oneway() {
            futures_lite::future::yield_now().await;
        }
        turn.take().write_pending()
    }

    /// Returns once fewer than [`MAX_PENDING`] bytes are queued, or the
    /// outbox is closed.
    async fn wait_for_room(&self) {
        loop {
            let listener = {
                let mut state = self.state();
                if state.pending.len() < MAX_PENDING || state.closed {
                    return;
                }
                state.waiting_for_room += 1;
                // Registered before the lock is let go: no notification is missed.
                self.room.listen()
            };
            let counted = WaitingForRoom(self);
            listener.await;
            drop(counted);
        }
    }

    /// Wakes the callers waiting for room, if there are any (`state` is
    /// then let go first).
    fn made_room(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiting_for_room > 0;
        drop(state);
        if waiting {
            self.room.notify(usize::MAX);
        }
    }

    /// Appends `cmd`'s frame; true if nobody was writing (the caller now is).
    fn append(&self, cmd: &RemotingCommand, body: &[u8]) -> Result<bool, OutboxError> {
        let mut state = self.state();
        if state.closed {
            return Err(OutboxError::Closed);
        }
        cmd.encode_with_body_into(body, &mut state.pending)
            .map_err(OutboxError::Encode)?;
        if state.writing {
            return Ok(false);
        }
        state.writing = true;
        Ok(true)
    }

    /// Writes what is pending (the caller holds `writing`), for a few rounds
    /// of what others append meanwhile, then leaves the rest to the writer
    /// task.
    fn write_pending(&self) -> Result<(), OutboxError> {
        let mut state = self.state();
        for _ in 0..CALLER_ROUNDS {
            let spare = std::mem::take(&mut state.spare);
            let mut out = std::mem::replace(&mut state.pending, spare);
            drop(state);
            let written = self.write_now(&out);
            state = self.state();
            match written {
                Ok(n) if n == out.len() => {
                    out.clear();
                    state.spare = out;
                    if state.pending.is_empty() {
                        state.writing = false;
                        let closed = state.closed;
                        self.made_room(state);
                        if closed {
                            // Closed while this caller wrote: the writer
                            // task shuts the socket now that nobody writes.
                            self.kick();
                        }
                        return Ok(());
                    }
                }
                Ok(n) => {
                    // The socket is full: the rest goes first, before what
                    // was appended meanwhile, and the writer task takes over.
                    out.drain(..n);
                    out.extend_from_slice(&state.pending);
                    state.pending = out;
                    break;
                }
                Err(e) => {
                    log::debug!("write failed: {e}");
                    state.closed = true;
                    state.pending.clear();
                    state.writing = false;
                    self.made_room(state);
                    // The writer task shuts the socket.
                    self.kick();
                    return Err(OutboxError::Closed);
                }
            }
        }
        // Rounds used up, or the socket is full: the writer task goes on.
        state.handed_over = true;
        drop(state);
        self.kick();
        Ok(())
    }

    /// Writes as much of `bytes` as the socket takes without blocking.
    fn write_now(&self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut socket: &StdTcpStream = self.socket.get_ref();
        let mut written = 0;
        while written < bytes.len() {
            match socket.write(&bytes[written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Takes no more frames; what is queued is still written, then the
    /// socket is shut (by the writer task).
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        self.made_room(state);
        self.kick();
    }

    /// The writer task: writes what a caller left when the socket was full,
    /// waiting for the socket to take it; once closed and nobody writes, shuts
    /// the socket both ways, which ends the reader too (it then fails what
    /// waits).
    pub(crate) async fn run_writer(self: Arc<Self>, kicked: Receiver<()>) {
        loop {
            // Every sender gone cannot happen while `self` lives; it would
            // mean closing.
            let open = kicked.recv().await.is_ok();
            if self.take_over() {
                while let Some(out) = self.next_chunk() {
                    let written = (&*self.socket).write_all(&out).await;
                    if !self.chunk_written(out, written) {
                        break;
                    }
                }
            }
            if self.finished(open) {
                // The peer may have gone already.
                let _ = self.socket.get_ref().shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }

    /// Whether a caller handed the writing over (the writer task then holds
    /// `writing`).
    fn take_over(&self) -> bool {
        std::mem::take(&mut self.state().handed_over)
    }

    /// What to write next; `None` (and `writing` given up) when nothing is.
    fn next_chunk(&self) -> Option<Vec<u8>> {
        let mut state = self.state();
        if state.pending.is_empty() {
            state.writing = false;
            return None;
        }
        let spare = std::mem::take(&mut state.spare);
        Some(std::mem::replace(&mut state.pending, spare))
    }

    /// Records a write of the writer task; false if it failed (the outbox is
    /// closed then, and `writing` given up).
    fn chunk_written(&self, mut out: Vec<u8>, written: std::io::Result<()>) -> bool {
        let mut state = self.state();
        if let Err(e) = written {
            log::debug!("write failed: {e}");
            state.closed = true;
            state.pending.clear();
            state.writing = false;
            self.made_room(state);
            return false;
        }
        out.clear();
        state.spare = out;
        self.made_room(state);
        true
    }

    /// Whether the outbox is closed and nobody writes any more.
    fn finished(&self, open: bool) -> bool {
        let state = self.state();
        (state.closed || !open) && !state.writing
    }
}

/// Counts a caller in `waiting_for_room` while it waits, so that a dropped
/// wait is counted out too.
struct WaitingForRoom<'a>(&'a Outbox);

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.state().waiting_for_room -= 1;
    }
}

/// A caller's turn to write, handed to the writer task if the caller is
/// dropped before it has written.
struct WriteTurn<'a>(Option<&'a Outbox>);

impl<'a> WriteTurn<'a> {
    fn take(mut self) -> &'a Outbox {
        self.0.take().expect("taken once")
    }
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        if let Some(outbox) = self.0.take() {
            outbox.state().handed_over = true;
            outbox.kick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_protocol::frame::DEFAULT_MAX_FRAME;
    use mq_protocol::frame_buffer::{Frame, FrameBuffer};
    use std::io::Read as _;

    /// Three senders of 300 frames of 20 KiB each, a reader that starts late
    /// (so that the socket fills and the writer task takes over): every
    /// frame arrives whole, each sender's in order, and closing ends the
    /// stream.
    #[test]
    fn frames_arrive_whole_and_in_order_when_the_socket_fills() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let reader = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().expect("a connection");
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut frames = FrameBuffer::new(DEFAULT_MAX_FRAME);
            let mut seen = Vec::new();
            loop {
                let n = peer.read(frames.spare()).expect("read");
                if n == 0 {
                    assert!(!frames.is_mid_frame(), "ended mid-frame");
                    return seen;
                }
                frames.filled(n);
                while let Some(Frame::Complete(body)) = frames.next_frame().expect("framing") {
                    let cmd = RemotingCommand::decode_frame_body(body).expect("decodes");
                    assert_eq!(cmd.body.len(), 20 * 1024);
                    seen.push(cmd.opaque);
                }
            }
        });
        let socket =
            Arc::new(async_io::block_on(Async::<StdTcpStream>::connect(addr)).expect("connects"));
        let (outbox, kicked) = Outbox::new(socket);
        let ex = async_executor::Executor::new();
        let writer = ex.spawn(outbox.clone().run_writer(kicked));
        async_io::block_on(ex.run(async {
            let send_all = |sender: i32| {
                let outbox = outbox.clone();
                async move {
                    for i in 0..300 {
                        let mut cmd = RemotingCommand::request(310);
                        cmd.opaque = sender * 1000 + i;
                        cmd.body = vec![sender as u8; 20 * 1024];
                        outbox.send(&cmd).await.expect("queued");
                        if i % 7 == 0 {
                            futures_lite::future::yield_now().await;
                        }
                    }
                }
            };
            futures_lite::future::zip(
                send_all(1),
                futures_lite::future::zip(send_all(2), send_all(3)),
            )
            .await;
            outbox.close();
            writer.await;
        }));
        let seen = reader.join().expect("the reader");
        assert_eq!(seen.len(), 900);
        for sender in 1..=3 {
            let mine: Vec<i32> = seen
                .iter()
                .copied()
                .filter(|o| o / 1000 == sender)
                .collect();
            assert_eq!(
                mine,
                (0..300).map(|i| sender * 1000 + i).collect::<Vec<_>>()
            );
        }
        let mut cmd = RemotingCommand::request(310);
        cmd.opaque = 1;
        assert!(matches!(
            async_io::block_on(outbox.send(&cmd)),
            Err(OutboxError::Closed)
        ));
    }

    /// A caller dropped after it appended but before it wrote (it stopped
    /// waiting): the writer task writes its frame, and later ones go too.
    #[test]
    fn a_caller_dropped_before_writing_leaves_the_writing_to_the_writer_task() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let reader = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().expect("a connection");
            let mut all = Vec::new();
            peer.read_to_end(&mut all).expect("read");
            let mut frames = FrameBuffer::new(DEFAULT_MAX_FRAME);
            frames.spare()[..all.len()].copy_from_slice(&all);
            frames.filled(all.len());
            let mut seen = Vec::new();
            while let Some(Frame::Complete(body)) = frames.next_frame().expect("framing") {
                seen.push(
                    RemotingCommand::decode_frame_body(body)
                        .expect("decodes")
                        .opaque,
                );
            }
            seen
        });
        let socket =
            Arc::new(async_io::block_on(Async::<StdTcpStream>::connect(addr)).expect("connects"));
        let (outbox, kicked) = Outbox::new(socket);
        let ex = async_executor::Executor::new();
        let writer = ex.spawn(outbox.clone().run_writer(kicked));
        async_io::block_on(ex.run(async {
            let mut first = RemotingCommand::request(310);
            first.opaque = 1;
            let pending = futures_lite::future::poll_once(Box::pin(outbox.send(&first))).await;
            assert!(
                pending.is_none(),
                "it yields before writing, and is dropped"
            );
            let mut second = RemotingCommand::request(310);
            second.opaque = 2;
            outbox.send(&second).await.expect("queued");
            outbox.close();
            writer.await;
        }));
        assert_eq!(reader.join().expect("the reader"), [1, 2]);
    }
}
