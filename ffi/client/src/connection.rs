//! One multiplexed connection to a NameServer or Broker: requests are matched
//! to responses by opaque, each with its own timeout; requests the server sends
//! to us (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...) go to a
//! handler. The read and write loops run as tasks on smol's global executor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_net::TcpStream;
use smol::channel::{bounded, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use thiserror::Error;

use mq_protocol::frame::{frame_length, RemotingCommand, DEFAULT_MAX_FRAME};

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

/// Answers requests the server sends on this connection.
pub type RequestHandler = Arc<dyn Fn(RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// A connection to one server.
pub struct RemotingClient {
    addr: String,
    out: Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<i32, Sender<RemotingCommand>>>>,
    next_opaque: AtomicI32,
    closed: Arc<AtomicBool>,
}

impl RemotingClient {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        handler: Option<RequestHandler>,
    ) -> Result<Arc<Self>, RemotingError> {
        let connect = TcpStream::connect(addr.to_owned());
        let stream = smol::future::or(connect, async {
            smol::Timer::after(timeout).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })
        .await
        .map_err(|source| RemotingError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        // Latency matters more than packet count for request/response traffic.
        let _ = stream.set_nodelay(true);
        let (out, frames) = bounded::<Vec<u8>>(1024);
        let pending: Arc<Mutex<HashMap<i32, Sender<RemotingCommand>>>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let client = Arc::new(RemotingClient {
            addr: addr.to_owned(),
            out: out.clone(),
            pending: pending.clone(),
            next_opaque: AtomicI32::new(1),
            closed: closed.clone(),
        });
        let mut writer = stream.clone();
        // Both loops end with the connection; detached on purpose.
        smol::spawn(async move {
            while let Ok(frame) = frames.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
            // Closed (or dropped): end the connection for the reader and the
            // server too, not only our sending half.
            let _ = writer.shutdown(std::net::Shutdown::Both);
        })
        .detach();
        let peer = addr.to_owned();
        smol::spawn(async move {
            let mut reader = stream;
            loop {
                match read_command(&mut reader).await {
                    Ok(cmd) if cmd.is_response() => {
                        let waiter = pending
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&cmd.opaque);
                        if let Some(tx) = waiter {
                            // The caller may have timed out already.
                            let _ = tx.try_send(cmd);
                        }
                    }
                    Ok(cmd) => {
                        let oneway = cmd.is_oneway();
                        let request = cmd.clone();
                        let answer = handler.as_ref().and_then(|h| h(cmd));
                        if let (false, Some(mut answer)) = (oneway, answer) {
                            answer.opaque = request.opaque;
                            answer.flag |= mq_protocol::frame::FLAG_RESPONSE;
                            if let Ok(frame) = answer.encode() {
                                let _ = out.send(frame).await;
                            }
                        }
                    }
                    Err(e) => {
                        log::debug!("connection to {peer} ended: {e}");
                        break;
                    }
                }
            }
            closed.store(true, Ordering::Release);
            // Waiters see their channel close and report Closed.
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            out.close();
        })
        .detach();
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
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.opaque = opaque;
        let frame = cmd.encode()?;
        let (tx, rx) = bounded(1);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(opaque, tx);
        if self.is_closed() || self.out.send(frame).await.is_err() {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&opaque);
            return Err(RemotingError::Closed(self.addr.clone()));
        }
        let answer = smol::future::or(async { Some(rx.recv().await) }, async {
            smol::Timer::after(timeout).await;
            None
        })
        .await;
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&opaque);
        match answer {
            Some(Ok(response)) => Ok(response),
            Some(Err(_)) => Err(RemotingError::Closed(self.addr.clone())),
            None => Err(RemotingError::Timeout {
                code: cmd.code,
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// Sends `cmd` one-way.
    pub async fn invoke_oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.set_oneway();
        let frame = cmd.encode()?;
        self.out
            .send(frame)
            .await
            .map_err(|_| RemotingError::Closed(self.addr.clone()))
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

async fn read_command(stream: &mut TcpStream) -> std::io::Result<RemotingCommand> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let length = frame_length(&len, DEFAULT_MAX_FRAME)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
        .expect("four bytes were read");
    let mut frame = vec![0u8; length];
    stream.read_exact(&mut frame).await?;
    RemotingCommand::decode_frame_body(&frame)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}
