//! The remoting server shared by the NameServer and the Broker: accepts
//! connections, reads frames, hands each request to a [`RequestHandler`] on its
//! own task (so a long-polling pull does not hold up the connection), writes the
//! responses, and lets the server send requests of its own to a client
//! (NOTIFY_CONSUMER_IDS_CHANGED).
//!
//! Bad input never takes the process down and, where the frame boundary is
//! still known, not even the connection: a frame over the limit is skipped
//! without being buffered and answered with an error naming the limit; a header
//! that cannot be decoded is answered with SYSTEM_ERROR when its opaque can be
//! recovered. Only a stream whose framing is lost (a negative length) is closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_net::{TcpListener, TcpStream};
use smol::channel::{bounded, Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::Semaphore;
use smol::Executor;

use mq::protocol::codes::response;
use mq::protocol::remoting::{frame_length, FrameError, RemotingCommand, SerializeType};

/// A boxed future, as request handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What serves requests.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request; `None` sends nothing (one-way requests, or a
    /// handler that answers later through [`Connection::send`]).
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection>,
        request: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>>;

    /// Called once when a connection closes.
    fn on_disconnect(&self, _conn: &Arc<Connection>) {}
}

/// Limits of one server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest frame accepted, length field included.
    pub max_frame: usize,
    /// Requests of one connection being handled at once; more wait (backpressure).
    pub max_in_flight: usize,
    /// Frames queued for writing to one connection.
    pub write_queue: usize,
    /// A connection silent for this long is closed (RocketMQ: 120 s).
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_frame: mq::protocol::remoting::DEFAULT_MAX_FRAME,
            max_in_flight: 256,
            write_queue: 1024,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// One client connection, shared by the tasks answering its requests.
pub struct Connection {
    /// Unique within the process.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Frames to write, drained by the connection's writer task.
    out: Sender<Vec<u8>>,
    closed: AtomicBool,
    /// Opaque of the requests this server sends to the client.
    next_opaque: AtomicI32,
    /// Waiters for responses to requests this server sent.
    pending: Mutex<HashMap<i32, Sender<RemotingCommand>>>,
    /// Language and version of the client, learnt from its requests.
    client_info: Mutex<(String, i32)>,
}

impl Connection {
    /// Queues `cmd` for writing. Returns false when the connection is gone.
    pub async fn send(&self, cmd: &RemotingCommand) -> bool {
        let frame = match cmd.encode() {
            Ok(frame) => frame,
            Err(e) => {
                log::error!("cannot encode a command for {}: {e}", self.peer);
                return false;
            }
        };
        self.out.send(frame).await.is_ok()
    }

    /// Sends a one-way request to the client.
    pub async fn send_oneway(&self, mut cmd: RemotingCommand) -> bool {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.set_oneway();
        self.send(&cmd).await
    }

    /// Sends a request to the client and waits for its response.
    pub async fn request(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Option<RemotingCommand> {
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.opaque = opaque;
        let (tx, rx) = bounded(1);
        self.pending
            .lock()
            .expect("pending lock poisoned")
            .insert(opaque, tx);
        let answer = if self.send(&cmd).await {
            smol::future::or(async { rx.recv().await.ok() }, async {
                smol::Timer::after(timeout).await;
                None
            })
            .await
        } else {
            None
        };
        self.pending
            .lock()
            .expect("pending lock poisoned")
            .remove(&opaque);
        answer
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Language name and version the client last sent.
    pub fn client_info(&self) -> (String, i32) {
        self.client_info
            .lock()
            .expect("client info poisoned")
            .clone()
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self
            .pending
            .lock()
            .expect("pending lock poisoned")
            .remove(&response.opaque);
        match waiter {
            // The waiter may have timed out; nothing to do then.
            Some(tx) => drop(tx.try_send(response)),
            None => log::debug!(
                "response from {} to an unknown request {}",
                self.peer,
                response.opaque
            ),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish()
    }
}

/// Tells every loop of a server to stop, and lets the stopper wait for the
/// requests in flight to finish.
#[derive(Clone)]
pub struct Shutdown {
    /// Closed when shutdown begins.
    signal: Receiver<()>,
    /// Upgraded into a token per in-flight request; when all tokens and the
    /// trigger's sender are gone, the trigger's `done` ends.
    in_flight: smol::channel::WeakSender<()>,
}

/// The side that triggers a [`Shutdown`].
pub struct ShutdownTrigger {
    signal: Option<Sender<()>>,
    done: Receiver<()>,
    in_flight: Option<Sender<()>>,
}

impl Shutdown {
    /// A new shutdown signal and its trigger.
    pub fn new() -> (Shutdown, ShutdownTrigger) {
        let (signal_tx, signal_rx) = bounded(1);
        let (in_flight_tx, done_rx) = bounded(1);
        (
            Shutdown {
                signal: signal_rx,
                in_flight: in_flight_tx.downgrade(),
            },
            ShutdownTrigger {
                signal: Some(signal_tx),
                done: done_rx,
                in_flight: Some(in_flight_tx),
            },
        )
    }

    /// Resolves when shutdown begins.
    pub async fn wait(&self) {
        // Nothing is ever sent: the channel closing is the signal.
        let _ = self.signal.recv().await;
    }

    /// Waits for `wake` to finish; `true` if shutdown began first (the loops of
    /// the servers use this between rounds).
    pub async fn wait_or<F: std::future::Future>(&self, wake: F) -> bool {
        smol::future::or(
            async {
                self.wait().await;
                true
            },
            async {
                wake.await;
                false
            },
        )
        .await
    }

    /// Sleeps for `period`; `true` if shutdown began first.
    pub async fn sleep(&self, period: Duration) -> bool {
        self.wait_or(smol::Timer::after(period)).await
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.signal.is_closed()
    }

    /// A token held while a request is handled (`None` once shutdown has
    /// finished waiting).
    pub fn track(&self) -> Option<Sender<()>> {
        self.in_flight.upgrade()
    }
}

impl ShutdownTrigger {
    /// Begins shutdown.
    pub fn trigger(&mut self) {
        self.signal.take();
    }

    /// Begins shutdown and waits (up to `timeout`) for the requests in flight.
    pub async fn trigger_and_wait(mut self, timeout: Duration) {
        self.trigger();
        self.in_flight.take();
        let done = self.done.clone();
        smol::future::or(
            async move {
                // Ends when every in-flight token is dropped.
                let _ = done.recv().await;
            },
            async {
                smol::Timer::after(timeout).await;
                log::warn!("requests still in flight after {timeout:?}; stopping anyway");
            },
        )
        .await;
    }
}

/// Accepts connections on `listener` until shutdown, serving each on `ex`.
pub async fn serve<H: RequestHandler>(
    ex: Arc<Executor<'static>>,
    listener: TcpListener,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let limits = Arc::new(limits);
    loop {
        let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                // Out of file descriptors and the like: back off instead of spinning.
                log::warn!("accept on {:?}: {e}", listener.local_addr());
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("set_nodelay for {peer}: {e}");
        }
        let (out_tx, out_rx) = bounded(limits.write_queue);
        let conn = Arc::new(Connection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            out: out_tx,
            closed: AtomicBool::new(false),
            next_opaque: AtomicI32::new(0),
            pending: Mutex::new(HashMap::new()),
            client_info: Mutex::new(("JAVA".into(), 0)),
        });
        log::debug!("connection {} from {peer}", conn.id);
        // Each connection runs until its peer leaves or shutdown; detached on purpose.
        ex.spawn(write_loop(stream.clone(), out_rx)).detach();
        ex.spawn(read_loop(
            ex.clone(),
            stream,
            conn,
            handler.clone(),
            limits.clone(),
            shutdown.clone(),
        ))
        .detach();
    }
}

async fn write_loop(mut stream: TcpStream, frames: Receiver<Vec<u8>>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(frame) = frames.recv().await {
        buf.clear();
        buf.extend_from_slice(&frame);
        // Coalesce what is already queued into one write.
        while buf.len() < 1 << 20 {
            match frames.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = stream.write_all(&buf).await {
            log::debug!("write to {:?}: {e}", stream.peer_addr());
            break;
        }
    }
    // The peer may have gone already.
    let _ = stream.close().await;
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream before
/// the first byte.
async fn read_full(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "peer closed the connection mid-frame ({filled} of {} bytes)",
                    buf.len()
                ),
            ));
        }
        filled += n;
    }
    Ok(true)
}

async fn read_loop<H: RequestHandler>(
    ex: Arc<Executor<'static>>,
    mut stream: TcpStream,
    conn: Arc<Connection>,
    handler: Arc<H>,
    limits: Arc<ServerLimits>,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight));
    loop {
        let next = smol::future::or(
            async { Some(read_frame(&mut stream, &conn, &limits).await) },
            async {
                let idle = async {
                    smol::Timer::after(limits.idle_timeout).await;
                };
                smol::future::or(shutdown.wait(), idle).await;
                None
            },
        )
        .await;
        let request = match next {
            None => break,
            Some(Ok(Some(cmd))) => cmd,
            Some(Ok(None)) => break,
            Some(Err(e)) => {
                log::warn!("closing connection from {}: {e}", conn.peer);
                break;
            }
        };
        if request.is_response() {
            conn.complete(request);
            continue;
        }
        *conn.client_info.lock().expect("client info poisoned") =
            (request.language.name().to_owned(), request.version);
        let permit = permits.acquire_arc().await;
        let token = shutdown.track();
        let conn2 = conn.clone();
        let handler2 = handler.clone();
        // Detached: the task ends when the handler answers; it holds the
        // shutdown token so shutdown waits for it.
        ex.spawn(async move {
            let oneway = request.is_oneway();
            let opaque = request.opaque;
            let serialize = request.serialize_type;
            let code = request.code;
            let handled = std::panic::AssertUnwindSafe(handler2.handle(conn2.clone(), request));
            // A bug in a handler must cost one request, not the process.
            let answer = match smol::future::FutureExt::catch_unwind(handled).await {
                Ok(answer) => answer,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    log::error!("request {code} from {} panicked: {what}", conn2.peer);
                    Some(RemotingCommand {
                        code: response::SYSTEM_ERROR,
                        remark: Some(format!("internal error handling request {code}")),
                        ..Default::default()
                    })
                }
            };
            if let Some(mut response) = answer {
                if !oneway {
                    response.opaque = opaque;
                    response.flag |= mq::protocol::remoting::FLAG_RESPONSE;
                    response.serialize_type = serialize;
                    conn2.send(&response).await;
                }
            }
            drop(permit);
            drop(token);
        })
        .detach();
    }
    conn.closed.store(true, Ordering::Release);
    handler.on_disconnect(&conn);
    log::debug!("connection {} from {} closed", conn.id, conn.peer);
}

/// Reads one frame. Frames that are too large or undecodable are answered (when
/// possible) and skipped; `Ok(None)` is a clean end of stream.
async fn read_frame(
    stream: &mut TcpStream,
    conn: &Connection,
    limits: &ServerLimits,
) -> std::io::Result<Option<RemotingCommand>> {
    loop {
        let mut len_buf = [0u8; 4];
        if !read_full(stream, &mut len_buf).await? {
            return Ok(None);
        }
        match frame_length(&len_buf, limits.max_frame) {
            Ok(Some(length)) => {
                let mut frame = vec![0u8; length];
                read_full_or_eof(stream, &mut frame).await?;
                match RemotingCommand::decode_frame_body(&frame) {
                    Ok(cmd) => return Ok(Some(cmd)),
                    Err(e) => {
                        log::warn!("undecodable frame from {}: {e}", conn.peer);
                        answer_salvaged(conn, &frame, &e.to_string()).await;
                    }
                }
            }
            Ok(None) => unreachable!("four bytes were read"),
            Err(FrameError::TooLarge { len, max }) => {
                // Read the header (bounded) to answer, then discard the rest
                // without buffering it.
                let mut remaining = len - 4;
                let mut word = [0u8; 4];
                read_full_or_eof(stream, &mut word).await?;
                remaining -= 4;
                let header_len = (u32::from_be_bytes(word) & 0x00FF_FFFF) as usize;
                let mut frame = word.to_vec();
                if header_len <= 64 * 1024 && header_len <= remaining {
                    let mut header = vec![0u8; header_len];
                    read_full_or_eof(stream, &mut header).await?;
                    remaining -= header_len;
                    frame.extend_from_slice(&header);
                }
                skip(stream, remaining).await?;
                log::warn!(
                    "frame of {len} bytes from {} exceeds the limit of {max}",
                    conn.peer
                );
                answer_salvaged(
                    conn,
                    &frame,
                    &format!("frame of {len} bytes exceeds the limit of {max} bytes"),
                )
                .await;
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
        }
    }
}

async fn read_full_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    if buf.is_empty() || read_full(stream, buf).await? {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed the connection mid-frame",
        ))
    }
}

async fn skip(stream: &mut TcpStream, mut n: usize) -> std::io::Result<()> {
    let mut scratch = [0u8; 16 * 1024];
    while n > 0 {
        let chunk = n.min(scratch.len());
        read_full_or_eof(stream, &mut scratch[..chunk]).await?;
        n -= chunk;
    }
    Ok(())
}

/// Answers a frame whose header could not be fully decoded with SYSTEM_ERROR,
/// if its opaque (and one-way flag) can still be read.
async fn answer_salvaged(conn: &Connection, frame: &[u8], why: &str) {
    let Some((opaque, oneway, serialize)) = salvage(frame) else {
        return;
    };
    if oneway {
        return;
    }
    let mut response = RemotingCommand::response_to(
        &RemotingCommand {
            opaque,
            serialize_type: serialize,
            ..Default::default()
        },
        response::SYSTEM_ERROR,
        Some(why.to_owned()),
    );
    response.serialize_type = serialize;
    conn.send(&response).await;
}

/// Best-effort opaque, one-way flag and serialization of a damaged frame.
fn salvage(frame: &[u8]) -> Option<(i32, bool, SerializeType)> {
    let word = u32::from_be_bytes(frame.get(0..4)?.try_into().ok()?);
    let header = frame.get(4..)?;
    match word >> 24 {
        1 => {
            let opaque = i32::from_be_bytes(header.get(5..9)?.try_into().ok()?);
            let flag = i32::from_be_bytes(header.get(9..13)?.try_into().ok()?);
            Some((opaque, flag & 2 != 0, SerializeType::RocketMq))
        }
        0 => {
            let text = String::from_utf8_lossy(header);
            let number_after = |key: &str| -> Option<i32> {
                let at = text.find(key)? + key.len();
                let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
                let rest = rest.strip_prefix('"').unwrap_or(rest);
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                    .unwrap_or(rest.len());
                rest[..end].parse().ok()
            };
            let opaque = number_after("\"opaque\"")?;
            let flag = number_after("\"flag\"").unwrap_or(0);
            Some((opaque, flag & 2 != 0, SerializeType::Json))
        }
        _ => None,
    }
}

/// An error response naming what was wrong, for handlers.
pub fn error_response(
    request: &RemotingCommand,
    code: i32,
    remark: impl Into<String>,
) -> RemotingCommand {
    RemotingCommand::response_to(request, code, Some(remark.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvages_opaque_from_damaged_headers() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&(20u32).to_be_bytes());
        frame.extend_from_slice(br#"{"code":10,"opaque":77,"flag":0,"extFields":{"#);
        assert_eq!(salvage(&frame), Some((77, false, SerializeType::Json)));
        let mut frame = Vec::new();
        frame.extend_from_slice(&((1u32 << 24) | 13).to_be_bytes());
        frame.extend_from_slice(&[0, 10, 0, 1, 151]);
        frame.extend_from_slice(&5i32.to_be_bytes());
        frame.extend_from_slice(&2i32.to_be_bytes());
        assert_eq!(salvage(&frame), Some((5, true, SerializeType::RocketMq)));
        assert_eq!(salvage(b"xx"), None);
    }
}
