//! One multiplexed connection to a NameServer or Broker: requests are matched
//! to responses by opaque, each with its own timeout; requests the server sends
//! to us (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...) go to a
//! handler. The read and write loops run as tasks on the executor of the
//! client instance that made the connection; a connection made on its own
//! ([`RemotingClient::connect`]) runs them on a thread of its own, which ends
//! when the connection is dropped.
//!
//! Timeouts: a request does not arm a timer of its own. Each waiting request
//! has a deadline in the connection's [`Pending`] table, and one sweeper task
//! per connection sleeps until the earliest deadline it knows of, fails the
//! requests due then, and sleeps again. A request whose deadline comes after
//! the one the sweeper waits for (the usual case: one timeout for all) costs
//! no timer and no wake-up; an async-io timer per request would cost an
//! insertion into the reactor, which wakes the reactor's thread, on every
//! request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};
use async_io::Async;
use async_net::TcpStream;
use futures_lite::io::AsyncReadExt;
use thiserror::Error;

use mq_protocol::acl::{Credentials, Signer};
use mq_protocol::frame::{LanguageCode, RemotingCommand, SerializeType, DEFAULT_MAX_FRAME};
use mq_protocol::frame_buffer::{Frame, FrameBuffer};

use crate::oneshot;
use crate::outbox::{Outbox, OutboxError};
use crate::runtime::Runtime;
use crate::timeout::within;

/// Why a request got no response.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// The connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// No response within the timeout.
    #[error("request {code} to {addr} timed out after {timeout:?}")]
    Timeout {
        /// Request code.
        code: i32,
        /// Peer.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection closed before the response came.
    #[error("connection to {0} closed")]
    Closed(String),
    /// The command could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(#[from] mq_protocol::frame::EncodeError),
}

/// A request as this client sends it: the code, the language brokers list
/// the client under (RUST), and RocketMQ's binary header, which every
/// RocketMQ 4.x server (and mq) reads and answers in kind: it costs both
/// sides less than JSON (no escaping, no number formatting of the fixed
/// fields, no scanning for quotes).
pub(crate) fn client_request(code: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.language = LanguageCode::Rust;
    cmd.serialize_type = SerializeType::RocketMq;
    cmd
}

/// Answers requests the server sends on this connection.
pub type RequestHandler = Arc<dyn Fn(RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// How a waiting request ends (a closed connection drops the sender).
enum Reply {
    /// The server answered.
    Response(RemotingCommand),
    /// The deadline passed first.
    TimedOut,
}

/// A request waiting for its response.
struct Waiting {
    reply: oneshot::Sender<Reply>,
    /// `None`: a timeout too long to be a point in time.
    deadline: Option<Instant>,
}

/// The requests of a connection waiting for responses, and when its
/// sweeper looks at them next.
#[derive(Default)]
struct Pending {
    waiting: HashMap<i32, Waiting>,
    /// When the sweeper wakes next; no waiting request has an earlier
    /// deadline. `None`: it sleeps until told.
    armed: Option<Instant>,
    /// The connection has closed: nothing waits any more.
    closed: bool,
}

/// [`Pending`] and the signal that tells its sweeper to look again.
struct Requests {
    table: Mutex<Pending>,
    sweep: (Sender<()>, Receiver<()>),
}

impl Requests {
    fn table(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a request; false once the connection has closed.
    fn insert(
        &self,
        opaque: i32,
        reply: oneshot::Sender<Reply>,
        deadline: Option<Instant>,
    ) -> bool {
        let rearm = {
            let mut t = self.table();
            if t.closed {
                return false;
            }
            t.waiting.insert(opaque, Waiting { reply, deadline });
            match (deadline, t.armed) {
                (Some(d), Some(armed)) if d < armed => {
                    t.armed = Some(d);
                    true
                }
                (Some(d), None) => {
                    t.armed = Some(d);
                    true
                }
                _ => false,
            }
        };
        if rearm {
            // Full means the sweeper is told already.
            let _ = self.sweep.0.try_send(());
        }
        true
    }

    /// Takes a waiting request (answered, timed out or given up).
    fn remove(&self, opaque: i32) -> Option<Waiting> {
        self.table().waiting.remove(&opaque)
    }

    /// The connection closed: every waiter sees its reply dropped.
    fn close(&self) {
        let waiting = {
            let mut t = self.table();
            t.closed = true;
            std::mem::take(&mut t.waiting)
        };
        drop(waiting);
        self.sweep.0.close();
    }

    /// Fails the requests due by now; returns when the sweeper should look
    /// next.
    fn expire(&self) -> Option<Instant> {
        let now = Instant::now();
        let (due, next) = {
            let mut t = self.table();
            let due: Vec<i32> = t
                .waiting
                .iter()
                .filter(|(_, w)| w.deadline.is_some_and(|d| d <= now))
                .map(|(o, _)| *o)
                .collect();
            let due: Vec<Waiting> = due.iter().filter_map(|o| t.waiting.remove(o)).collect();
            let next = t.waiting.values().filter_map(|w| w.deadline).min();
            t.armed = next;
            (due, next)
        };
        for w in due {
            w.reply.send(Reply::TimedOut);
        }
        next
    }
}

/// Fails a connection's requests at their deadlines (see the module doc);
/// ends when the connection closes.
async fn sweeper(requests: Arc<Requests>) {
    let told = requests.sweep.1.clone();
    loop {
        let armed = {
            let t = requests.table();
            if t.closed {
                return;
            }
            t.armed
        };
        let open = match armed {
            None => told.recv().await.is_ok(),
            Some(at) => {
                futures_lite::future::or(async { told.recv().await.is_ok() }, async {
                    async_io::Timer::at(at).await;
                    true
                })
                .await
            }
        };
        if !open {
            return;
        }
        requests.expire();
    }
}

/// Forgets a request when its caller stops waiting, however that happens.
struct Forget<'a>(&'a Requests, i32);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// A connection to one server.
pub struct RemotingClient {
    addr: String,
    out: Arc<Outbox>,
    requests: Arc<Requests>,
    next_opaque: AtomicI32,
    closed: Arc<AtomicBool>,
    /// A connection of its own: the thread running its read and write loops,
    /// stopped when the connection is dropped. `None` on an instance's
    /// executor.
    own_runtime: Option<Runtime>,
    /// Signs every request sent, for brokers with ACL on (the key made
    /// ready once per connection).
    signer: Option<Signer>,
}

impl RemotingClient {
    /// Connects to `addr` (`host:port`) within `timeout`, with a thread of the
    /// connection's own (`mq-conn-<n>-0`) for its I/O, which ends when the
    /// connection is dropped. Producers and consumers connect through their
    /// [`ClientInstance`](crate::ClientInstance) instead.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        handler: Option<RequestHandler>,
    ) -> Result<Arc<Self>, RemotingError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let runtime = Runtime::start(&format!("mq-conn-{n}"), 1).map_err(|source| {
            RemotingError::Connect {
                addr: addr.to_owned(),
                source,
            }
        })?;
        let mut client = Self::open(addr, timeout, handler, &runtime, None).await?;
        client.own_runtime = Some(runtime);
        Ok(Arc::new(client))
    }

    /// Connects to `addr` within `timeout`, with the read and write loops on
    /// `runtime`, signing every request with `credentials` when given.
    pub(crate) async fn connect_on(
        runtime: &Runtime,
        addr: &str,
        timeout: Duration,
        handler: Option<RequestHandler>,
        credentials: Option<Credentials>,
    ) -> Result<Arc<Self>, RemotingError> {
        Self::open(addr, timeout, handler, runtime, credentials)
            .await
            .map(Arc::new)
    }

    async fn open(
        addr: &str,
        timeout: Duration,
        handler: Option<RequestHandler>,
        runtime: &Runtime,
        credentials: Option<Credentials>,
    ) -> Result<Self, RemotingError> {
        let stream = within(timeout, TcpStream::connect(addr.to_owned()))
            .await
            .unwrap_or_else(|| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            })
            .map_err(|source| RemotingError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Latency matters more than packet count for request/response traffic.
        let _ = stream.set_nodelay(true);
        let socket: Arc<Async<std::net::TcpStream>> = stream.clone().into();
        let (out, kicked) = Outbox::new(socket);
        let requests = Arc::new(Requests {
            table: Mutex::default(),
            sweep: bounded(1),
        });
        let closed = Arc::new(AtomicBool::new(false));
        let client = RemotingClient {
            addr: addr.to_owned(),
            out: out.clone(),
            requests: requests.clone(),
            next_opaque: AtomicI32::new(1),
            closed: closed.clone(),
            own_runtime: None,
            signer: credentials.as_ref().map(Credentials::signer),
        };
        // Ends when the reader closes the requests.
        runtime.spawn_detached(sweeper(requests.clone()));
        // The writer and the reader end with the connection (or with the
        // runtime, which drops them); detached on purpose. Closing the
        // outbox (the reader's end, `close`, drop) ends the writer, which
        // shuts the socket both ways and so ends the reader.
        runtime.spawn_detached(out.clone().run_writer(kicked));
        let peer = addr.to_owned();
        runtime.spawn_detached(async move {
            let mut reader = stream;
            let mut frames = FrameBuffer::new(DEFAULT_MAX_FRAME);
            loop {
                match read_command(&mut reader, &mut frames).await {
                    Ok(cmd) if cmd.is_response() => {
                        // None: the caller timed out or gave up already.
                        if let Some(w) = requests.remove(cmd.opaque) {
                            w.reply.send(Reply::Response(cmd));
                        }
                    }
                    Ok(cmd) => {
                        let oneway = cmd.is_oneway();
                        let request = cmd.clone();
                        let answer = handler.as_ref().and_then(|h| h(cmd));
                        if let (false, Some(mut answer)) = (oneway, answer) {
                            answer.opaque = request.opaque;
                            answer.flag |= mq_protocol::frame::FLAG_RESPONSE;
                            answer.serialize_type = request.serialize_type;
                            // Closed: the server is gone, and its request with it.
                            let _ = out.send(&answer).await;
                        }
                    }
                    Err(e) => {
                        log::debug!("connection to {peer} ended: {e}");
                        break;
                    }
                }
            }
            closed.store(true, Ordering::Release);
            // Waiters see their reply dropped and report Closed.
            requests.close();
            out.close();
        });
        Ok(client)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends `cmd` and waits up to `timeout` for its response.
    pub async fn invoke(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let body = std::mem::take(&mut cmd.body);
        self.invoke_with_body(cmd, &body, timeout).await
    }

    /// [`invoke`](Self::invoke) with `body` in place of the command's own:
    /// written once, into the outbox, not copied into the command first.
    pub async fn invoke_with_body(
        &self,
        mut cmd: RemotingCommand,
        body: &[u8],
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.opaque = opaque;
        if let Some(signer) = &self.signer {
            signer.sign_with_body(&mut cmd, body);
        }
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now().checked_add(timeout);
        if !self.requests.insert(opaque, tx, deadline) {
            return Err(RemotingError::Closed(self.addr.clone()));
        }
        // Answered, timed out, failed or dropped by its caller: forgotten.
        let _forget = Forget(&self.requests, opaque);
        self.out
            .send_with_body(&cmd, body)
            .await
            .map_err(|e| self.outbox_error(e))?;
        match rx.await {
            Some(Reply::Response(response)) => Ok(response),
            Some(Reply::TimedOut) => Err(RemotingError::Timeout {
                code: cmd.code,
                addr: self.addr.clone(),
                timeout,
            }),
            None => Err(RemotingError::Closed(self.addr.clone())),
        }
    }

    /// Sends `cmd` one-way.
    pub async fn invoke_oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        let body = std::mem::take(&mut cmd.body);
        self.invoke_oneway_with_body(cmd, &body).await
    }

    /// [`invoke_oneway`](Self::invoke_oneway) with `body` in place of the
    /// command's own.
    pub async fn invoke_oneway_with_body(
        &self,
        mut cmd: RemotingCommand,
        body: &[u8],
    ) -> Result<(), RemotingError> {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.set_oneway();
        if let Some(signer) = &self.signer {
            signer.sign_with_body(&mut cmd, body);
        }
        self.out
            .send_with_body(&cmd, body)
            .await
            .map_err(|e| self.outbox_error(e))
    }

    fn outbox_error(&self, e: OutboxError) -> RemotingError {
        match e {
            OutboxError::Closed => RemotingError::Closed(self.addr.clone()),
            OutboxError::Encode(e) => RemotingError::Encode(e),
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.out.close();
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.out.close();
    }
}

/// The next command from the server: from what `frames` holds, or after as
/// many reads as it takes (one read usually brings several responses).
async fn read_command(
    stream: &mut TcpStream,
    frames: &mut FrameBuffer,
) -> std::io::Result<RemotingCommand> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    loop {
        match frames.next_frame().map_err(|e| invalid(e.to_string()))? {
            Some(Frame::Complete(body)) => {
                return RemotingCommand::decode_frame_body(body).map_err(|e| invalid(e.to_string()))
            }
            Some(Frame::Oversized { len, max, .. }) => {
                return Err(invalid(format!(
                    "frame of {len} bytes exceeds the limit of {max} bytes"
                )))
            }
            None => {}
        }
        let n = stream.read(frames.spare()).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                if frames.is_mid_frame() {
                    "the server closed the connection mid-frame"
                } else {
                    "the server closed the connection"
                },
            ));
        }
        frames.filled(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_time_out_at_their_own_deadlines() {
        // A server that accepts and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = silent.local_addr().expect("its address").to_string();
        let client = crate::block_on(RemotingClient::connect(&addr, Duration::from_secs(5), None))
            .expect("a connection");
        let request = || client_request(mq_protocol::codes::request::GET_ROUTEINFO_BY_TOPIC);
        // A long one first, then a short one: the sweeper must wake for
        // the short one's earlier deadline, not sleep until the long one's.
        let started = Instant::now();
        let (long, short) = crate::block_on(futures_lite::future::zip(
            client.invoke(request(), Duration::from_millis(900)),
            async {
                async_io::Timer::after(Duration::from_millis(20)).await;
                let r = client.invoke(request(), Duration::from_millis(100)).await;
                (r, started.elapsed())
            },
        ));
        let (short, short_took) = short;
        assert!(
            matches!(short, Err(RemotingError::Timeout { .. })),
            "{short:?}"
        );
        assert!(
            short_took >= Duration::from_millis(100) && short_took < Duration::from_millis(600),
            "the short request took {short_took:?}"
        );
        assert!(
            matches!(long, Err(RemotingError::Timeout { .. })),
            "{long:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // Nothing is left waiting.
        assert!(client.requests.table().waiting.is_empty());
        drop(silent);
    }
}
