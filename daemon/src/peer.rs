//! Connections the daemon opens to other servers: the broker to each
//! NameServer (registration), and later a slave to its master. One request at
//! a time per connection, so a response is simply the next frame that answers
//! it; a connection that fails or times out is dropped and made again on the
//! next request. The client library's multiplexed connection is not used here:
//! building `mqd` compiles no client.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_lock::Mutex;
use async_net::TcpStream;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use thiserror::Error;

use mq_protocol::acl::Credentials;
use mq_protocol::frame::{frame_length, RemotingCommand, DEFAULT_MAX_FRAME};

/// Why a request to a peer got no response.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The peer.
        addr: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing failed, or the peer sent what is not a frame.
    #[error("connection to {addr}: {source}")]
    Io {
        /// The peer.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// No response within the timeout.
    #[error("request {code} to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The request code.
        code: i32,
        /// The peer.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(#[from] mq_protocol::frame::EncodeError),
}

/// A connection to one server, made on first use.
pub struct PeerConnection {
    addr: String,
    connect_timeout: Duration,
    /// `None` until connected, and again after a failure.
    stream: Mutex<Option<TcpStream>>,
    next_opaque: AtomicI32,
    /// Signs every request, for servers with ACL on.
    credentials: Option<Credentials>,
}

impl PeerConnection {
    /// A connection to `addr` (`host:port`), not yet made.
    pub fn new(addr: impl Into<String>, connect_timeout: Duration) -> Self {
        PeerConnection {
            addr: addr.into(),
            connect_timeout,
            stream: Mutex::new(None),
            next_opaque: AtomicI32::new(1),
            credentials: None,
        }
    }

    /// The same connection, signing every request with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `cmd` and waits up to `timeout` (connecting included) for its
    /// response.
    pub async fn invoke(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, PeerError> {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        if let Some(credentials) = &self.credentials {
            credentials.sign(&mut cmd);
        }
        let frame = cmd.encode()?;
        let mut slot = self.stream.lock().await;
        let exchange = async {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            let stream = slot.as_mut().expect("connected above");
            let io = |source| PeerError::Io {
                addr: self.addr.clone(),
                source,
            };
            stream.write_all(&frame).await.map_err(io)?;
            loop {
                let answer = read_command(stream).await.map_err(io)?;
                // Anything else (a stale response, a request) is not ours.
                if answer.is_response() && answer.opaque == cmd.opaque {
                    return Ok(answer);
                }
            }
        };
        let result = futures_lite::future::or(exchange, async {
            async_io::Timer::after(timeout).await;
            Err(PeerError::Timeout {
                code: cmd.code,
                addr: self.addr.clone(),
                timeout,
            })
        })
        .await;
        if result.is_err() {
            // Where the stream stands is unknown: start afresh next time.
            *slot = None;
        }
        result
    }

    async fn connect(&self) -> Result<TcpStream, PeerError> {
        let stream = TcpStream::connect(self.addr.as_str()).await;
        let stream = futures_lite::future::or(async { stream }, async {
            async_io::Timer::after(self.connect_timeout).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })
        .await
        .map_err(|source| PeerError::Connect {
            addr: self.addr.clone(),
            source,
        })?;
        // Latency matters more than packet count for request/response traffic.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Reads one frame, its length checked against the default limit.
async fn read_command(stream: &mut TcpStream) -> std::io::Result<RemotingCommand> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let length = frame_length(&len, DEFAULT_MAX_FRAME)
        .map_err(|e| invalid(e.to_string()))?
        .ok_or_else(|| invalid("short frame length".into()))?;
    let mut frame = vec![0u8; length];
    stream.read_exact(&mut frame).await?;
    RemotingCommand::decode_frame_body(&frame).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_and_a_vanished_peer_is_an_error_not_a_hang() {
        async_io::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let server = async move {
                // First connection: answer one request, then hang up mid-way.
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_command(&mut stream).await.unwrap();
                let answer = RemotingCommand::response_to(&request, 0, None);
                stream.write_all(&answer.encode().unwrap()).await.unwrap();
                let _ = read_command(&mut stream).await;
                drop(stream);
                // Second connection: answer again.
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_command(&mut stream).await.unwrap();
                let answer = RemotingCommand::response_to(&request, 0, None);
                stream.write_all(&answer.encode().unwrap()).await.unwrap();
            };
            let client = async {
                let peer = PeerConnection::new(addr, Duration::from_secs(1));
                let timeout = Duration::from_secs(2);
                let first = peer.invoke(RemotingCommand::request(105), timeout).await;
                assert_eq!(first.unwrap().code, 0);
                let lost = peer.invoke(RemotingCommand::request(105), timeout).await;
                assert!(matches!(lost, Err(PeerError::Io { .. })), "{lost:?}");
                let again = peer.invoke(RemotingCommand::request(105), timeout).await;
                assert_eq!(again.unwrap().code, 0, "reconnected");
            };
            futures_lite::future::zip(server, client).await;
        });
    }
}
