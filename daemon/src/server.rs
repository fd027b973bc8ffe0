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
//!
//! Each listener holds at most [`ServerLimits::max_connections`] connections,
//! so that idle clients cannot take the descriptors the store needs (see
//! [`crate::descriptors`]). A connection beyond the limit is accepted and closed
//! at once; refusals, like failing accepts, are logged at most once per
//! [`WARNING_INTERVAL`] per listener, with a count.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};
use async_executor::Executor;
use async_lock::Semaphore;
use async_net::{TcpListener, TcpStream};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use mq_protocol::codes::response;

use crate::shutdown::Shutdown;
use mq_protocol::frame::{frame_length, FrameError, RemotingCommand, SerializeType};

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
    /// Connections open now, for the metrics endpoint; listeners given the
    /// same counter count together (the broker's main and VIP ports).
    pub open_connections: Arc<AtomicUsize>,
    /// Connections open at once; one more is closed as soon as it is accepted.
    /// By default a single listener's share of the descriptor limit
    /// ([`crate::descriptors::connections_per_listener`]).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_frame: mq_protocol::frame::DEFAULT_MAX_FRAME,
            max_in_flight: 256,
            write_queue: 1024,
            idle_timeout: Duration::from_secs(120),
            open_connections: Arc::default(),
            max_connections: crate::descriptors::connections_per_listener(1),
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
            .unwrap_or_else(PoisonError::into_inner)
            .insert(opaque, tx);
        let answer = if self.send(&cmd).await {
            futures_lite::future::or(async { rx.recv().await.ok() }, async {
                async_io::Timer::after(timeout).await;
                None
            })
            .await
        } else {
            None
        };
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

/// The shortest time between two warnings of one kind from one listener: a
/// flood of refused connections or failing accepts costs a log line every ten
/// seconds, not one per connection.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The pause after a failed accept. Out of descriptors, the pending connection
/// stays in the backlog and the listener stays readable, so retrying at once
/// would spin; a tenth of a second keeps the wake-ups rare and the wait short.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The open connections of one listener, counted against its limit.
struct ConnectionCount {
    max: usize,
    open: Arc<AtomicUsize>,
    /// The counter the metrics endpoint reads.
    shown: Arc<AtomicUsize>,
}

impl ConnectionCount {
    fn new(max: usize, shown: Arc<AtomicUsize>) -> Self {
        ConnectionCount {
            max,
            open: Arc::new(AtomicUsize::new(0)),
            shown,
        }
    }

    /// A slot for one more connection, or `None` when the listener is full.
    fn admit(&self) -> Option<ConnectionSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()?;
        self.shown.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot {
            open: self.open.clone(),
            shown: self.shown.clone(),
        })
    }
}

/// One connection's place in its listener's count. Both tasks of the
/// connection hold it and the last one to end gives it back, so the count
/// follows the socket's descriptor however the connection ends: the peer
/// leaving (cleanly or mid-frame), a frame that loses the framing, an idle
/// timeout, a failed write, or shutdown.
struct ConnectionSlot {
    open: Arc<AtomicUsize>,
    shown: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.shown.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets one warning through per interval and counts the events in between,
/// so that the next warning, when the interval is over, says how many there
/// were.
struct WarningThrottle {
    interval: Duration,
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl WarningThrottle {
    fn new(interval: Duration) -> Self {
        WarningThrottle {
            interval,
            last_warning: None,
            since_warning: 0,
        }
    }

    /// Records one event at `now`. `Some(n)` when a warning is due, `n` being
    /// the events since the last warning, this one included.
    fn record(&mut self, now: Instant) -> Option<u64> {
        self.since_warning += 1;
        self.take_due(now)
    }

    /// When the events held back may be reported; `None` if there are none.
    fn report_at(&self) -> Option<Instant> {
        if self.since_warning == 0 {
            return None;
        }
        Some(
            self.last_warning
                .map_or_else(Instant::now, |last| last + self.interval),
        )
    }

    /// `Some(n)` if `n > 0` events are held back and a warning is due at `now`.
    fn take_due(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if self.since_warning == 0 || !due {
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.since_warning))
    }
}

/// What woke the accept loop.
enum Wake {
    /// A connection arrived, or accepting failed.
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    /// Warnings held back by a throttle may be logged now.
    ReportDue,
    /// Shutdown began.
    Shutdown,
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
    let local = listener
        .local_addr()
        .map_or_else(|e| format!("(unknown address: {e})"), |a| a.to_string());
    let max = limits.max_connections;
    let connections = ConnectionCount::new(max, limits.open_connections.clone());
    let mut refusals = WarningThrottle::new(WARNING_INTERVAL);
    let mut accept_failures = WarningThrottle::new(WARNING_INTERVAL);
    let warn_refused = |refused: u64| {
        log::warn!(
            "{local}: refused {refused} connection(s) since the last warning: {max} are \
             open, the most this listener takes (serverMaxConnections)"
        );
    };
    let warn_failed = |failures: u64, e: &dyn std::fmt::Display| {
        log::warn!(
            "accept on {local}: {e} ({failures} failure(s) since the last warning); \
             retrying every {ACCEPT_BACKOFF:?}"
        );
    };
    log::info!("{local}: accepting up to {max} connections at once");
    let mut last_accept_error = String::new();
    loop {
        // Held-back counts are reported when their interval ends, even if the
        // flood that caused them is over by then.
        let report_at = [refusals.report_at(), accept_failures.report_at()]
            .into_iter()
            .flatten()
            .min();
        let wake = futures_lite::future::or(
            async { Wake::Accepted(listener.accept().await) },
            futures_lite::future::or(
                async {
                    shutdown.wait().await;
                    Wake::Shutdown
                },
                async {
                    match report_at {
                        Some(at) => {
                            async_io::Timer::at(at).await;
                            Wake::ReportDue
                        }
                        None => futures_lite::future::pending().await,
                    }
                },
            ),
        )
        .await;
        let (stream, peer) = match wake {
            Wake::Shutdown => return,
            Wake::ReportDue => {
                let now = Instant::now();
                if let Some(refused) = refusals.take_due(now) {
                    warn_refused(refused);
                }
                if let Some(failures) = accept_failures.take_due(now) {
                    warn_failed(failures, &last_accept_error);
                }
                continue;
            }
            Wake::Accepted(Ok(pair)) => pair,
            // The client gave up before it was accepted; nothing is wrong here.
            Wake::Accepted(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                log::debug!("accept on {local}: {e}");
                continue;
            }
            Wake::Accepted(Err(e)) => {
                // EMFILE and ENFILE (out of descriptors), ENOBUFS, ENOMEM.
                if let Some(failures) = accept_failures.record(Instant::now()) {
                    warn_failed(failures, &e);
                }
                last_accept_error = e.to_string();
                async_io::Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = connections.admit() else {
            // Closed at once rather than left in the backlog: the backlog keeps
            // moving for the clients that will fit, and this one learns now
            // instead of at its timeout.
            drop(stream);
            if let Some(refused) = refusals.record(Instant::now()) {
                warn_refused(refused);
            }
            continue;
        };
        let slot = Arc::new(slot);
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
        ex.spawn(write_loop(stream.clone(), out_rx, slot.clone()))
            .detach();
        ex.spawn(read_loop(
            ex.clone(),
            stream,
            conn,
            handler.clone(),
            limits.clone(),
            shutdown.clone(),
            slot,
        ))
        .detach();
    }
}

async fn write_loop(mut stream: TcpStream, frames: Receiver<Vec<u8>>, _slot: Arc<ConnectionSlot>) {
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
    _slot: Arc<ConnectionSlot>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight));
    loop {
        let next = futures_lite::future::or(
            async { Some(read_frame(&mut stream, &conn, &limits).await) },
            async {
                let idle = async {
                    async_io::Timer::after(limits.idle_timeout).await;
                };
                futures_lite::future::or(shutdown.wait(), idle).await;
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
        *conn
            .client_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
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
            let answer = match futures_lite::future::FutureExt::catch_unwind(handled).await {
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
                    response.flag |= mq_protocol::frame::FLAG_RESPONSE;
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

    #[test]
    fn one_warning_per_interval_counts_the_rest() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut throttle = WarningThrottle::new(Duration::from_secs(10));
        assert_eq!(throttle.report_at(), None, "nothing to report yet");
        assert_eq!(throttle.record(start), Some(1), "the first event warns");
        assert_eq!(throttle.report_at(), None);
        for s in 1..10 {
            assert_eq!(throttle.record(at(s)), None);
        }
        assert_eq!(throttle.report_at(), Some(at(10)));
        assert_eq!(
            throttle.take_due(at(9)),
            None,
            "not before the interval ends"
        );
        assert_eq!(throttle.record(at(10)), Some(10));
        assert_eq!(throttle.record(at(11)), None);
        // The flood ended: the held-back event is reported when its time comes.
        assert_eq!(throttle.report_at(), Some(at(20)));
        assert_eq!(throttle.take_due(at(20)), Some(1));
        assert_eq!(throttle.take_due(at(40)), None, "nothing held back");
        assert_eq!(throttle.record(at(60)), Some(1));
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let shown = Arc::new(AtomicUsize::new(0));
        let count = ConnectionCount::new(2, shown.clone());
        let first = count.admit().expect("room for one");
        let second = Arc::new(count.admit().expect("room for two"));
        assert!(count.admit().is_none(), "full at two");
        let shared = second.clone();
        drop(second);
        assert!(count.admit().is_none(), "still held by the other task");
        drop(shared);
        let third = count.admit().expect("room again");
        drop(first);
        assert_eq!(shown.load(Ordering::Acquire), 1, "only the third is open");
        drop(third);
        assert_eq!(count.open.load(Ordering::Acquire), 0);
        assert_eq!(shown.load(Ordering::Acquire), 0);
    }

    /// Answers nothing; the connection limit is all these tests look at.
    struct Silent;

    impl RequestHandler for Silent {
        fn handle(
            self: Arc<Self>,
            _conn: Arc<Connection>,
            _request: RemotingCommand,
        ) -> BoxFuture<Option<RemotingCommand>> {
            Box::pin(async { None })
        }
    }

    /// Whether the server closes `stream` within half a second.
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        let read = futures_lite::future::or(async { Some(stream.read(&mut byte).await) }, async {
            async_io::Timer::after(Duration::from_millis(500)).await;
            None
        })
        .await;
        matches!(read, Some(Ok(0)) | Some(Err(_)))
    }

    #[test]
    fn closes_connections_beyond_the_limit_and_admits_again_after_one_leaves() {
        let ex = Arc::new(Executor::new());
        let (shutdown, mut trigger) = Shutdown::new();
        async_io::block_on(ex.run(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let limits = ServerLimits {
                max_connections: 2,
                ..ServerLimits::default()
            };
            let server = ex.spawn(serve(
                ex.clone(),
                listener,
                Arc::new(Silent),
                limits,
                shutdown,
            ));
            let connect = || async { TcpStream::connect(addr).await.expect("connect") };
            let mut first = connect().await;
            let mut second = connect().await;
            let mut third = connect().await;
            assert!(closed_by_server(&mut third).await, "over the limit");
            // A peer that leaves mid-frame gives its slot back too.
            first.write_all(&[0, 0, 0, 100, 0]).await.expect("write");
            drop(first);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut next = connect().await;
                if !closed_by_server(&mut next).await {
                    break;
                }
                assert!(Instant::now() < deadline, "the slot was never given back");
            }
            assert!(!closed_by_server(&mut second).await, "admitted ones stay");
            trigger.trigger();
            server.await;
        }));
    }
}
