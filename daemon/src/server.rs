//! The remoting server shared by the NameServer and the Broker: accepts
//! connections, reads frames, hands each request to a [`RequestHandler`] (on a
//! task of its own only when the handler has to wait, so that a long-polling
//! pull does not hold up the connection), writes the responses, and lets the
//! server send requests of its own to a client (NOTIFY_CONSUMER_IDS_CHANGED).
//! One task per connection does the reading and the writing, a read and a
//! write for as many frames as are there (see `connection_loop`).
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
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};
use async_executor::Executor;
use async_net::{TcpListener, TcpStream};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use mq_protocol::codes::response;

use crate::shutdown::Shutdown;
use mq_protocol::frame::{LanguageCode, RemotingCommand, SerializeType};
use mq_protocol::frame_buffer::{Frame, FrameBuffer};

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
    /// Requests of one connection waiting in handlers at once (a flush, a
    /// parked pull); more are not read until one finishes (backpressure).
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
    /// What to write, drained by the connection's task.
    out: Sender<Outgoing>,
    closed: AtomicBool,
    /// Opaque of the requests this server sends to the client.
    next_opaque: AtomicI32,
    /// Waiters for responses to requests this server sent.
    pending: Mutex<HashMap<i32, Sender<RemotingCommand>>>,
    /// Language and version of the client, learnt from its requests.
    client_info: Mutex<(LanguageCode, i32)>,
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
        self.out.send(Outgoing::Frame(frame)).await.is_ok()
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
        let (language, version) = *self
            .client_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (language.name().to_owned(), version)
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

/// One connection's place in its listener's count. The connection's task
/// holds it and gives it back as it ends, with the socket's descriptor,
/// however the connection ends: the peer
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
            client_info: Mutex::new((LanguageCode::Java, 0)),
        });
        log::debug!("connection {} from {peer}", conn.id);
        // Each connection runs until its peer leaves or shutdown; detached on purpose.
        ex.spawn(connection_loop(
            ex.clone(),
            stream,
            conn,
            out_rx,
            handler.clone(),
            limits.clone(),
            shutdown.clone(),
            slot,
        ))
        .detach();
    }
}

/// What a connection's task is sent to write.
enum Outgoing {
    /// A frame the server sends on its own (a request to the client, or an
    /// answer given later, such as a parked pull's).
    Frame(Vec<u8>),
    /// A handler that could not answer at once has finished, with the frame
    /// of its response (`None`: nothing to send).
    Done(Option<Vec<u8>>),
}

/// What woke a connection's task.
enum ConnWake {
    /// The socket was read: the count, 0 at the end of the stream.
    Read(std::io::Result<usize>),
    /// Something to write came in (`None`: the channel closed).
    Out(Option<Outgoing>),
    /// Shutdown began, or the connection has been idle too long.
    Stop,
}

/// When a connection last read something: milliseconds since it opened.
struct LastRead {
    opened: Instant,
    ms: AtomicU64,
}

impl LastRead {
    fn new() -> Self {
        LastRead {
            opened: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ms.store(ms, Ordering::Relaxed);
    }

    fn at(&self) -> Instant {
        self.opened + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

/// Resolves when shutdown begins or when nothing has been read for
/// `idle_timeout` since `last_read`. One timer for the whole connection,
/// moved only when it fires: arming one per read would cost the reactor a
/// timer insertion (and a wake-up of its thread) on every request.
async fn stop_signal(shutdown: &Shutdown, idle_timeout: Duration, last_read: &LastRead) {
    let idle = async {
        let mut timer = async_io::Timer::after(idle_timeout);
        loop {
            (&mut timer).await;
            let due = last_read.at() + idle_timeout;
            if Instant::now() >= due {
                return;
            }
            timer.set_at(due);
        }
    };
    futures_lite::future::or(shutdown.wait(), idle).await;
}

/// Serves one connection: reads frames, handles requests and writes the
/// responses, until the peer leaves, the framing is lost, the connection is
/// idle too long, or shutdown.
///
/// One read brings in as many frames as have arrived; each request is
/// handled at once on this task, and only a handler that has to wait (a
/// flush under SYNC_FLUSH, a parked pull, a call to another server) goes on
/// to a task of its own, so a send to an ASYNC_FLUSH broker costs no task
/// and no wake-up of another thread. The responses of one read are encoded
/// into one buffer and written with one call, together with whatever the
/// waiting handlers have queued by then.
///
/// At the end of the stream the connection counts as gone for the handler
/// (`on_disconnect`), but the answers of requests still in flight are
/// written before the socket closes, as a client that half-closes expects.
#[allow(clippy::too_many_arguments)]
async fn connection_loop<H: RequestHandler>(
    ex: Arc<Executor<'static>>,
    mut stream: TcpStream,
    conn: Arc<Connection>,
    outgoing: Receiver<Outgoing>,
    handler: Arc<H>,
    limits: Arc<ServerLimits>,
    shutdown: Shutdown,
    _slot: ConnectionSlot,
) {
    let mut frames = FrameBuffer::new(limits.max_frame);
    let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
    // Handlers running on tasks of their own.
    let mut in_flight = 0usize;
    let mut client_info = (LanguageCode::Java, 0);
    let mut ended = false;
    let last_read = LastRead::new();
    let mut stop = pin!(stop_signal(&shutdown, limits.idle_timeout, &last_read));
    'conn: loop {
        while !ended && in_flight < limits.max_in_flight {
            let body = match frames.next_frame() {
                Ok(Some(Frame::Complete(body))) => body,
                Ok(Some(Frame::Oversized { len, max, head })) => {
                    log::warn!(
                        "frame of {len} bytes from {} exceeds the limit of {max}",
                        conn.peer
                    );
                    let why = format!("frame of {len} bytes exceeds the limit of {max} bytes");
                    answer_salvaged(&mut batch, head, &why);
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("closing connection from {}: {e}", conn.peer);
                    break 'conn;
                }
            };
            let request = match RemotingCommand::decode_frame_body(body) {
                Ok(request) => request,
                Err(e) => {
                    log::warn!("undecodable frame from {}: {e}", conn.peer);
                    answer_salvaged(&mut batch, body, &e.to_string());
                    continue;
                }
            };
            if request.is_response() {
                conn.complete(request);
                continue;
            }
            if client_info != (request.language, request.version) {
                client_info = (request.language, request.version);
                *conn
                    .client_info
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = client_info;
            }
            let mut answer = Box::pin(answer(handler.clone(), conn.clone(), request));
            match futures_lite::future::poll_once(&mut answer).await {
                Some(Some(response)) => encode_response(&conn, &response, &mut batch),
                Some(None) => {}
                None => {
                    in_flight += 1;
                    let token = shutdown.track();
                    let (conn, done) = (conn.clone(), conn.out.clone());
                    // Detached: it ends when the handler answers, and holds
                    // the shutdown token so shutdown waits for it.
                    ex.spawn(async move {
                        let frame = answer.await.and_then(|response| {
                            let mut frame = Vec::new();
                            encode_response(&conn, &response, &mut frame);
                            (!frame.is_empty()).then_some(frame)
                        });
                        // Closed: the connection is gone, and the answer with it.
                        let _ = done.send(Outgoing::Done(frame)).await;
                        drop(token);
                    })
                    .detach();
                }
            }
        }
        while let Ok(out) = outgoing.try_recv() {
            take_outgoing(out, &mut batch, &mut in_flight);
        }
        if !batch.is_empty() {
            let written =
                futures_lite::future::or(async { Some(stream.write_all(&batch).await) }, async {
                    stop.as_mut().await;
                    None
                })
                .await;
            match written {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    log::debug!("write to {}: {e}", conn.peer);
                    break;
                }
                None => break,
            }
            batch.clear();
            if batch.capacity() > 1 << 20 {
                // A large response has gone: give its memory back.
                batch = Vec::with_capacity(16 * 1024);
            }
        }
        if ended && in_flight == 0 {
            break;
        }
        let reading = !ended && in_flight < limits.max_in_flight;
        let wake = futures_lite::future::or(
            async {
                if reading {
                    ConnWake::Read(stream.read(frames.spare()).await)
                } else {
                    futures_lite::future::pending().await
                }
            },
            futures_lite::future::or(async { ConnWake::Out(outgoing.recv().await.ok()) }, async {
                stop.as_mut().await;
                ConnWake::Stop
            }),
        )
        .await;
        match wake {
            ConnWake::Read(Ok(0)) => {
                if frames.is_mid_frame() {
                    log::warn!(
                        "closing connection from {}: peer closed the connection mid-frame",
                        conn.peer
                    );
                    break;
                }
                ended = true;
                disconnected(&conn, &*handler);
            }
            ConnWake::Read(Ok(n)) => {
                frames.filled(n);
                last_read.now();
            }
            ConnWake::Read(Err(e)) => {
                log::warn!("closing connection from {}: {e}", conn.peer);
                break;
            }
            ConnWake::Out(Some(out)) => {
                take_outgoing(out, &mut batch, &mut in_flight);
                if in_flight > 0 {
                    // Answers released together (one slave report, one
                    // flush) finish on their tasks one after another: a turn
                    // for them first lets them share this write.
                    futures_lite::future::yield_now().await;
                }
            }
            ConnWake::Out(None) | ConnWake::Stop => break,
        }
    }
    if !ended {
        disconnected(&conn, &*handler);
    }
    // The peer may have gone already.
    let _ = stream.close().await;
}

/// Marks the connection closed and tells the handler.
fn disconnected<H: RequestHandler>(conn: &Arc<Connection>, handler: &H) {
    conn.closed.store(true, Ordering::Release);
    handler.on_disconnect(conn);
    log::debug!("connection {} from {} closed", conn.id, conn.peer);
}

fn take_outgoing(out: Outgoing, batch: &mut Vec<u8>, in_flight: &mut usize) {
    match out {
        Outgoing::Frame(frame) => batch.extend_from_slice(&frame),
        Outgoing::Done(frame) => {
            *in_flight -= 1;
            if let Some(frame) = frame {
                batch.extend_from_slice(&frame);
            }
        }
    }
}

/// Appends `response` to `out`; a response that cannot be encoded is logged
/// and left out.
fn encode_response(conn: &Connection, response: &RemotingCommand, out: &mut Vec<u8>) {
    if let Err(e) = response.encode_into(out) {
        log::error!("cannot encode a response for {}: {e}", conn.peer);
    }
}

/// Handles one request: the handler's response, made a response to this
/// request, or SYSTEM_ERROR if the handler panicked; `None` when nothing is
/// to be sent (a one-way request, or a handler that answers later).
async fn answer<H: RequestHandler>(
    handler: Arc<H>,
    conn: Arc<Connection>,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let oneway = request.is_oneway();
    let opaque = request.opaque;
    let serialize = request.serialize_type;
    let code = request.code;
    let peer = conn.peer;
    let handled = std::panic::AssertUnwindSafe(handler.handle(conn, request));
    // A bug in a handler must cost one request, not the process.
    let answer = match futures_lite::future::FutureExt::catch_unwind(handled).await {
        Ok(answer) => answer,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("request {code} from {peer} panicked: {what}");
            Some(RemotingCommand {
                code: response::SYSTEM_ERROR,
                remark: Some(format!("internal error handling request {code}")),
                ..Default::default()
            })
        }
    };
    let mut response = answer.filter(|_| !oneway)?;
    response.opaque = opaque;
    response.flag |= mq_protocol::frame::FLAG_RESPONSE;
    response.serialize_type = serialize;
    Some(response)
}

/// Appends to `out` the SYSTEM_ERROR answer to a frame whose header could
/// not be fully decoded, if its opaque (and one-way flag) can still be read.
/// `frame` is the frame without its length field (or its start).
fn answer_salvaged(out: &mut Vec<u8>, frame: &[u8], why: &str) {
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
    if let Err(e) = response.encode_into(out) {
        log::error!("cannot encode an error response: {e}");
    }
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
