//! The metrics endpoint's HTTP/1.1 responder: `GET /metrics` (or `/`)
//! answers the exposition text, any other path 404, any other method 405;
//! one request per connection, then the connection closes (Prometheus opens
//! a connection per scrape or reuses none it could not reuse).
//!
//! The request is parsed by `httparse`; the response is a status line, three
//! headers and the body, which needs no library. A request must arrive whole
//! within [`READ_TIMEOUT`] and fit in [`MAX_REQUEST`] bytes, and at most
//! [`MAX_CONNECTIONS`] scrapes run at once, so a slow or hostile client cannot
//! hold the daemon's descriptors or memory.

use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;
use async_lock::Semaphore;
use async_net::{TcpListener, TcpStream};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use super::{Exposition, MetricsSource};
use crate::shutdown::Shutdown;

/// Largest request accepted (request line and headers).
pub const MAX_REQUEST: usize = 8192;
/// Time a client has to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes answered at once; more connections wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;

/// Logs where `what`'s endpoint listens and serves `source` there on `ex`
/// until shutdown, detached like the servers beside it.
pub fn start(
    ex: &Arc<Executor<'static>>,
    what: &str,
    listener: TcpListener,
    source: Arc<dyn MetricsSource>,
    shutdown: &Shutdown,
) {
    match listener.local_addr() {
        Ok(addr) => log::info!("{what} metrics on http://{addr}/metrics"),
        Err(e) => log::info!("{what} metrics endpoint listening (address unknown: {e})"),
    }
    ex.spawn(serve(ex.clone(), listener, source, shutdown.clone()))
        .detach();
}

/// Serves `source` on `listener` until shutdown.
pub async fn serve(
    ex: Arc<Executor<'static>>,
    listener: TcpListener,
    source: Arc<dyn MetricsSource>,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = futures_lite::future::or(async { Some(permits.acquire_arc().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(permit) = permit else {
            return;
        };
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                log::warn!("metrics endpoint: accept failed: {e}");
                async_io::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        // One scrape per task; it ends with its connection, so detached.
        ex.spawn(async move {
            if let Err(e) = answer(stream, &*source).await {
                log::debug!("metrics endpoint: {peer}: {e}");
            }
            drop(permit);
        })
        .detach();
    }
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream, source: &dyn MetricsSource) -> std::io::Result<()> {
    let request = futures_lite::future::or(read_request(&mut stream), async {
        async_io::Timer::after(READ_TIMEOUT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no whole request in time",
        ))
    })
    .await?;
    let (status, body) = match request {
        Request::Get(path) if path == "/metrics" || path == "/" => {
            let mut out = Exposition::default();
            source.render(&mut out);
            ("200 OK", out.into_text())
        }
        Request::Get(path) => ("404 Not Found", format!("no {path} here; try /metrics\n")),
        Request::OtherMethod => ("405 Method Not Allowed", "only GET\n".to_owned()),
        Request::Bad(why) => ("400 Bad Request", format!("{why}\n")),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n\
         Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    // The client may have gone already.
    let _ = stream.close().await;
    Ok(())
}

/// What the client asked.
#[derive(Debug, PartialEq)]
enum Request {
    /// GET of this path (query string removed).
    Get(String),
    /// Any method but GET.
    OtherMethod,
    /// Not HTTP, or too large.
    Bad(String),
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a whole request",
            ));
        }
        filled += n;
        match parse(&buf[..filled]) {
            Some(request) => return Ok(request),
            None if filled == buf.len() => {
                return Ok(Request::Bad(format!(
                    "request larger than {MAX_REQUEST} bytes"
                )))
            }
            None => {}
        }
    }
}

/// `None` while the request is incomplete.
fn parse(bytes: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Err(e) => Some(Request::Bad(format!("bad request: {e}"))),
        Ok(httparse::Status::Complete(_)) => Some(match req.method {
            Some("GET") => {
                let path = req.path.unwrap_or("/");
                Request::Get(path.split('?').next().unwrap_or(path).to_owned())
            }
            _ => Request::OtherMethod,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_as_read() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Request::Get("/metrics".into()))
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Request::OtherMethod)
        );
        assert!(matches!(
            parse(b"\x00\x01 nonsense\r\n\r\n"),
            Some(Request::Bad(_))
        ));
    }
}
