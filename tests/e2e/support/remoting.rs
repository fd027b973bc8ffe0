//! Talking to a NameServer or broker over the remoting protocol with the
//! client's `RemotingClient`: connecting, requests with their header fields
//! spelled out, calls that check the response, and waiting for a condition.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Receiver;

use mq::connection::{RemotingClient, RequestHandler};
use mq_protocol::codes::response as resp;
use mq_protocol::frame::{RemotingCommand, SerializeType};

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Both header serializations; every request is tried in each.
pub const BOTH: [SerializeType; 2] = [SerializeType::Json, SerializeType::RocketMq];

/// Connects a client without a handler for server requests.
pub async fn connect(addr: &str) -> Arc<RemotingClient> {
    RemotingClient::connect(addr, TIMEOUT, None)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Connects a client whose server-sent requests (NOTIFY_CONSUMER_IDS_CHANGED)
/// arrive on the returned channel.
pub async fn connect_observed(addr: &str) -> (Arc<RemotingClient>, Receiver<RemotingCommand>) {
    let (tx, rx) = async_channel::unbounded();
    let handler: RequestHandler = Arc::new(move |cmd| {
        // The receiver may be gone at the end of a test.
        let _ = tx.try_send(cmd);
        None
    });
    let client = RemotingClient::connect(addr, TIMEOUT, Some(handler))
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    (client, rx)
}

/// Waits up to `limit` for the next item of `rx`.
pub async fn recv_within<T>(rx: &Receiver<T>, limit: Duration) -> Option<T> {
    futures_lite::future::or(async { rx.recv().await.ok() }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}

/// A request with header fields, in `ser`.
pub fn request(code: i32, ser: SerializeType, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.serialize_type = ser;
    for (k, v) in fields {
        cmd.put(k, v);
    }
    cmd
}

/// Sends `cmd` and returns the response, checking that it is a response in
/// the request's serialization.
pub async fn call(client: &RemotingClient, cmd: RemotingCommand) -> RemotingCommand {
    let (code, ser) = (cmd.code, cmd.serialize_type);
    let response = client
        .invoke(cmd, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("request {code} ({ser:?}): {e}"));
    assert!(response.is_response(), "request {code}: not a response");
    assert_eq!(
        response.serialize_type, ser,
        "request {code}: the response must use the request's serialization"
    );
    response
}

/// Like [`call`], and the response must be SUCCESS.
pub async fn call_ok(client: &RemotingClient, cmd: RemotingCommand) -> RemotingCommand {
    let code = cmd.code;
    let response = call(client, cmd).await;
    assert_eq!(
        response.code,
        resp::SUCCESS,
        "request {code}: {:?}",
        response.remark
    );
    response
}

/// Polls `probe` every 20 ms until it returns `Some`, for up to `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        async_io::Timer::after(Duration::from_millis(20)).await;
    }
}
