//! Helpers for the Broker's end-to-end tests (`tests/broker.rs`): an in-process
//! NameServer and Broker on free loopback ports in a temporary directory, the
//! `mqd` binary as a child process, request builders that spell out the wire
//! fields, and raw-socket frame helpers for peers that misbehave.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Executor;

use mq::connection::{RemotingClient, RequestHandler};
use mq_daemon::broker::{Broker, BrokerConfig, BrokerError};
use mq_daemon::shutdown::{Shutdown, ShutdownTrigger};
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{
    frame_length, LanguageCode, RemotingCommand, SerializeType, DEFAULT_MAX_FRAME,
};
use mq_protocol::message::{decode_offset_msg_id, decode_records, StoredMessage};
use mq_protocol::properties;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Both header serializations; every request is tried in each.
pub const BOTH: [SerializeType; 2] = [SerializeType::Json, SerializeType::RocketMq];
/// The broker name the test brokers run under (the default).
pub const BROKER_NAME: &str = "broker-a";

pub use super::tempdir::TempDir;

/// A port P such that P - 2 (the VIP port) and P + 1 (HA) were free as well.
/// Another process may take them before the broker binds; callers retry.
pub fn free_listen_port() -> u16 {
    loop {
        let main = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = main.local_addr().expect("local address").port();
        if !(1030..u16::MAX).contains(&port) {
            continue;
        }
        let vip = std::net::TcpListener::bind(("127.0.0.1", port - 2));
        let ha = std::net::TcpListener::bind(("127.0.0.1", port + 1));
        if vip.is_ok() && ha.is_ok() {
            return port;
        }
    }
}

/// A free port for a NameServer.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

pub use mq_protocol::time::now_ms;

/// A NameServer and a Broker running in this process on a two-thread
/// executor, with small store files in a temporary directory; stopped cleanly
/// on drop.
pub struct TestBroker {
    pub broker: Arc<Broker>,
    /// The NameServer's address.
    pub namesrv: SocketAddr,
    /// `127.0.0.1:listenPort`.
    pub addr: String,
    /// `127.0.0.1:listenPort-2`.
    pub vip: String,
    pub port: u16,
    trigger: Option<ShutdownTrigger>,
    /// Closing it makes the executor threads return.
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    /// Removed last, after the store is closed.
    pub dir: TempDir,
}

impl TestBroker {
    /// A broker with the test defaults.
    pub fn start() -> TestBroker {
        TestBroker::start_with(&[])
    }

    /// A broker with the test defaults plus `extra` broker.conf keys.
    pub fn start_with(extra: &[(&str, &str)]) -> TestBroker {
        let dir = TempDir::new("broker");
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..2)
            .map(|_| {
                let ex = ex.clone();
                let stopped = stopped.clone();
                std::thread::spawn(move || {
                    // Returns when `stop` closes.
                    let _ = smol::block_on(ex.run(stopped.recv()));
                })
            })
            .collect();
        let (shutdown, trigger) = Shutdown::new();
        let namesrv = smol::block_on(mq_daemon::namesrv::start(
            ex.clone(),
            "127.0.0.1:0".parse().expect("address"),
            shutdown.clone(),
        ))
        .expect("start the NameServer");
        let mut last_error = String::new();
        for attempt in 0..8 {
            let port = free_listen_port();
            let mut config = BrokerConfig::default();
            let root = dir.path().join(format!("store-{attempt}"));
            let mut settings: Vec<(&str, String)> = vec![
                ("namesrvAddr", namesrv.to_string()),
                ("brokerIP1", "127.0.0.1".into()),
                ("listenPort", port.to_string()),
                ("storePathRootDir", root.display().to_string()),
                ("mappedFileSizeCommitLog", "1048576".into()),
                ("mappedFileSizeConsumeQueue", "6000".into()),
                ("maxIndexNum", "2000".into()),
                ("maxHashSlotNum", "500".into()),
                ("flushIntervalCommitLog", "100".into()),
            ];
            settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            for (key, value) in &settings {
                config
                    .set(key, value)
                    .unwrap_or_else(|e| panic!("setting {key}={value}: {e}"));
            }
            config.validate().expect("valid broker config");
            match smol::block_on(Broker::start(ex.clone(), config, shutdown.clone())) {
                Ok(broker) => {
                    settle(&format!("127.0.0.1:{port}"));
                    return TestBroker {
                        broker,
                        namesrv,
                        addr: format!("127.0.0.1:{port}"),
                        vip: format!("127.0.0.1:{}", port - 2),
                        port,
                        trigger: Some(trigger),
                        stop: Some(stop),
                        threads,
                        dir,
                    };
                }
                // Someone took the port between the probe and the bind.
                Err(e @ (BrokerError::Bind { .. } | BrokerError::BindVip { .. })) => {
                    last_error = e.to_string()
                }
                Err(e) => panic!("broker did not start: {e}"),
            }
        }
        panic!("no free broker port found: {last_error}");
    }

    /// A new connection to the main port.
    pub async fn client(&self) -> Arc<RemotingClient> {
        connect(&self.addr).await
    }

    /// The store root of the running broker.
    pub fn store_root(&self) -> PathBuf {
        self.broker.config().store.root.clone()
    }
}

/// Waits until the broker's topic table stops changing. It creates system
/// topics in the background just after start, and concurrent topic changes
/// race each other when persisting (`concurrent_topic_changes_all_succeed`);
/// letting that burst pass keeps the other tests about what they test.
fn settle(addr: &str) {
    smol::block_on(async {
        let client = connect(addr).await;
        let version = || async {
            let r = call_ok(
                &client,
                request(req::GET_ALL_TOPIC_CONFIG, SerializeType::Json, &[]),
            )
            .await;
            mq_protocol::body::TopicConfigSerializeWrapper::decode(&r.body)
                .expect("topic config wrapper")
                .data_version
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = version().await;
        while Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(50)).await;
            let now = version().await;
            if now == last {
                return;
            }
            last = now;
        }
    });
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(trigger) = self.trigger.take() {
            let broker = self.broker.clone();
            smol::block_on(async {
                broker.begin_shutdown().await;
                trigger.trigger_and_wait(Duration::from_secs(5)).await;
                if let Err(e) = broker.finish_shutdown().await {
                    eprintln!("broker shutdown: {e}");
                }
            });
        }
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects a client without a handler for server requests.
pub async fn connect(addr: &str) -> Arc<RemotingClient> {
    RemotingClient::connect(addr, TIMEOUT, None)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Connects a client whose server-sent requests (NOTIFY_CONSUMER_IDS_CHANGED)
/// arrive on the returned channel.
pub async fn connect_observed(addr: &str) -> (Arc<RemotingClient>, Receiver<RemotingCommand>) {
    let (tx, rx) = smol::channel::unbounded();
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
    smol::future::or(async { rx.recv().await.ok() }, async {
        smol::Timer::after(limit).await;
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
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}

/// A properties string from pairs (no trailing separator, as Java 4.9 writes it).
pub fn props(pairs: &[(&str, &str)]) -> String {
    properties::encode(pairs.iter().copied())
}

/// SEND_MESSAGE_V2 (310) as a Java 4.9 producer sends it.
pub fn send_v2(
    ser: SerializeType,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
) -> RemotingCommand {
    let born = now_ms().to_string();
    let queue = queue_id.to_string();
    let mut cmd = request(
        req::SEND_MESSAGE_V2,
        ser,
        &[
            ("a", "TestProducerGroup"),
            ("b", topic),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", &queue),
            ("f", "0"),
            ("g", &born),
            ("h", "0"),
            ("i", properties),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", BROKER_NAME),
        ],
    );
    cmd.body = body.to_vec();
    cmd
}

/// What a successful send answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub msg_id: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// CommitLog offset, from the offset message id.
    pub phys: i64,
}

/// Reads a send response, which must be SUCCESS.
pub fn sent(response: &RemotingCommand) -> Sent {
    assert_eq!(response.code, resp::SUCCESS, "send: {:?}", response.remark);
    let msg_id = response.get("msgId").expect("msgId").to_owned();
    let first = msg_id.split(',').next().expect("one id at least");
    let (_, phys) = decode_offset_msg_id(first).expect("an offset message id");
    Sent {
        queue_id: response
            .get("queueId")
            .expect("queueId")
            .parse()
            .expect("a number"),
        queue_offset: response
            .get("queueOffset")
            .expect("queueOffset")
            .parse()
            .expect("a number"),
        msg_id,
        phys,
    }
}

/// Sends one message with SEND_MESSAGE_V2 in JSON and returns the result.
pub async fn send(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
) -> Sent {
    let response = call(
        client,
        send_v2(SerializeType::Json, topic, queue_id, body, properties),
    )
    .await;
    sent(&response)
}

/// Creates (or updates) `topic` with `queues` read and write queues, perm RW.
pub async fn create_topic(client: &RemotingClient, topic: &str, queues: i32) {
    let n = queues.to_string();
    call_ok(
        client,
        request(
            req::UPDATE_AND_CREATE_TOPIC,
            SerializeType::Json,
            &[
                ("topic", topic),
                ("defaultTopic", "TBW102"),
                ("readQueueNums", &n),
                ("writeQueueNums", &n),
                ("perm", "6"),
                ("topicFilterType", "SINGLE_TAG"),
                ("topicSysFlag", "0"),
                ("order", "false"),
            ],
        ),
    )
    .await;
}

/// How a test pulls.
#[derive(Debug, Clone)]
pub struct Pull<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub offset: i64,
    pub max: i32,
    pub sys_flag: i32,
    pub commit_offset: i64,
    pub suspend_ms: i64,
    pub subscription: Option<&'a str>,
}

impl<'a> Pull<'a> {
    /// A plain pull of up to 32 messages, no flags.
    pub fn new(group: &'a str, topic: &'a str, queue_id: i32, offset: i64) -> Self {
        Pull {
            group,
            topic,
            queue_id,
            offset,
            max: 32,
            sys_flag: 0,
            commit_offset: 0,
            suspend_ms: 0,
            subscription: None,
        }
    }

    /// The PULL_MESSAGE request, fields as the Java consumer names them.
    pub fn command(&self, ser: SerializeType) -> RemotingCommand {
        let (queue, offset, max, flag, commit, suspend) = (
            self.queue_id.to_string(),
            self.offset.to_string(),
            self.max.to_string(),
            self.sys_flag.to_string(),
            self.commit_offset.to_string(),
            self.suspend_ms.to_string(),
        );
        let mut cmd = request(
            req::PULL_MESSAGE,
            ser,
            &[
                ("consumerGroup", self.group),
                ("topic", self.topic),
                ("queueId", &queue),
                ("queueOffset", &offset),
                ("maxMsgNums", &max),
                ("sysFlag", &flag),
                ("commitOffset", &commit),
                ("suspendTimeoutMillis", &suspend),
                ("subVersion", "0"),
                ("expressionType", "TAG"),
            ],
        );
        if let Some(sub) = self.subscription {
            cmd.put("subscription", sub);
        }
        cmd
    }
}

/// Decodes a PULL/QUERY body (records back to back, CRC checked).
pub fn records(body: &[u8]) -> Vec<StoredMessage<'_>> {
    decode_records(body, true).expect("well-formed stored messages")
}

/// The bodies of a PULL/QUERY body's records, as text.
pub fn bodies(body: &[u8]) -> Vec<String> {
    records(body)
        .iter()
        .map(|m| String::from_utf8_lossy(m.body).into_owned())
        .collect()
}

/// A header field parsed as i64.
pub fn field_i64(cmd: &RemotingCommand, key: &str) -> i64 {
    cmd.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", cmd.ext_fields))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {:?}", cmd.get(key)))
}

/// GET_MAX_OFFSET of a queue.
pub async fn max_offset(client: &RemotingClient, topic: &str, queue_id: i32) -> i64 {
    let q = queue_id.to_string();
    let response = call_ok(
        client,
        request(
            req::GET_MAX_OFFSET,
            SerializeType::Json,
            &[("topic", topic), ("queueId", &q)],
        ),
    )
    .await;
    field_i64(&response, "offset")
}

/// Waits until the queue's max offset reaches `at_least`.
pub async fn wait_max_offset(client: &RemotingClient, topic: &str, queue_id: i32, at_least: i64) {
    eventually(
        &format!("{topic}:{queue_id} to reach offset {at_least}"),
        TIMEOUT,
        || async move { (max_offset(client, topic, queue_id).await >= at_least).then_some(()) },
    )
    .await
}

/// QUERY_CONSUMER_OFFSET: the response code and offset (if any).
pub async fn query_offset(
    client: &RemotingClient,
    ser: SerializeType,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> (i32, Option<i64>) {
    let q = queue_id.to_string();
    let response = call(
        client,
        request(
            req::QUERY_CONSUMER_OFFSET,
            ser,
            &[("consumerGroup", group), ("topic", topic), ("queueId", &q)],
        ),
    )
    .await;
    (
        response.code,
        response.get("offset").map(|o| o.parse().expect("a number")),
    )
}

/// A Java-style HeartbeatData body for one consumer group subscribed to
/// `topic` with a TAG expression, and one producer group.
pub fn consumer_heartbeat(client_id: &str, group: &str, topic: &str, expression: &str) -> Vec<u8> {
    let tags: Vec<&str> = if expression == "*" {
        Vec::new()
    } else {
        expression.split("||").map(str::trim).collect()
    };
    let codes: Vec<String> = tags
        .iter()
        .map(|t| properties::java_string_hash(t).to_string())
        .collect();
    let tags_json: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"{{"clientID":"{client_id}","consumerDataSet":[{{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"{group}","messageModel":"CLUSTERING","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[{}],"expressionType":"TAG","subString":"{expression}","subVersion":{},"tagsSet":[{}],"topic":"{topic}"}}],"unitMode":false}}],"producerDataSet":[{{"groupName":"CLIENT_INNER_PRODUCER"}}]}}"#,
        codes.join(","),
        now_ms(),
        tags_json.join(","),
    )
    .into_bytes()
}

/// A HEART_BEAT request with `body`, from a client of `language`.
pub fn heartbeat(ser: SerializeType, language: LanguageCode, body: Vec<u8>) -> RemotingCommand {
    let mut cmd = request(req::HEART_BEAT, ser, &[]);
    cmd.language = language;
    cmd.body = body;
    cmd
}

/// GET_CONSUMER_LIST_BY_GROUP's ids, or `None` when the group has no consumer.
pub async fn consumer_ids(client: &RemotingClient, group: &str) -> Option<Vec<String>> {
    let response = call(
        client,
        request(
            req::GET_CONSUMER_LIST_BY_GROUP,
            SerializeType::Json,
            &[("consumerGroup", group)],
        ),
    )
    .await;
    if response.code != resp::SUCCESS {
        return None;
    }
    let mut ids = mq_protocol::body::GetConsumerListByGroupResponseBody::decode(&response.body)
        .expect("consumer list body")
        .consumer_id_list;
    ids.sort();
    Some(ids)
}

// ---------------------------------------------------------------------------
// Raw frames

/// A raw connection.
pub async fn raw(addr: &str) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// A frame with a JSON header given as text.
pub fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
    typed_frame(0, header.as_bytes(), body)
}

/// A frame with serialize type `ty` and the given header bytes.
pub fn typed_frame(ty: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let length = 4 + header.len() + body.len();
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_be_bytes());
    out.extend_from_slice(&((u32::from(ty) << 24) | header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// Writes `cmd` (with its own opaque) to a raw connection.
pub async fn write_cmd(stream: &mut TcpStream, cmd: &RemotingCommand) {
    let frame = cmd.encode().expect("encode");
    stream.write_all(&frame).await.expect("write a frame");
}

/// Reads one frame, or the I/O error that ended the stream; `None` if nothing
/// complete arrived within `limit`.
pub async fn read_within(
    stream: &mut TcpStream,
    limit: Duration,
) -> Option<std::io::Result<RemotingCommand>> {
    smol::future::or(async { Some(read_frame(stream).await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<RemotingCommand> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let length = frame_length(&len, DEFAULT_MAX_FRAME)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
        .expect("four bytes");
    let mut frame = vec![0u8; length];
    stream.read_exact(&mut frame).await?;
    RemotingCommand::decode_frame_body(&frame)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads the next frame, which must arrive within [`TIMEOUT`].
pub async fn next_frame(stream: &mut TcpStream) -> RemotingCommand {
    match read_within(stream, TIMEOUT).await {
        Some(Ok(cmd)) => cmd,
        Some(Err(e)) => panic!("reading a response: {e}"),
        None => panic!("no response within {TIMEOUT:?}"),
    }
}

/// Whether the peer closed the connection within `limit` (EOF or reset).
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    let read = smol::future::or(async { Some(stream.read(&mut byte).await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await;
    matches!(read, Some(Ok(0)) | Some(Err(_)))
}

/// Proves a raw connection still works: a GET_MAX_OFFSET with `opaque` is answered.
pub async fn still_serves(stream: &mut TcpStream, opaque: i32) {
    let mut probe = request(
        req::GET_MAX_OFFSET,
        SerializeType::Json,
        &[("topic", "TBW102"), ("queueId", "0")],
    );
    probe.opaque = opaque;
    write_cmd(stream, &probe).await;
    let answer = next_frame(stream).await;
    assert_eq!(
        (answer.opaque, answer.code),
        (opaque, resp::SUCCESS),
        "the connection must still serve requests: {:?}",
        answer.remark
    );
}

// ---------------------------------------------------------------------------
// The mqd binary

/// `mqd standalone` as a child process; killed on drop if still running.
pub struct Mqd {
    child: Option<Child>,
    pub data: PathBuf,
    pub broker_addr: String,
    log: PathBuf,
}

impl Mqd {
    /// Starts `mqd standalone --data <data>` on the given ports and waits until
    /// the broker answers.
    pub fn start(data: &Path, namesrv_port: u16, listen_port: u16, log: &Path) -> Mqd {
        Mqd::start_with(data, namesrv_port, listen_port, log, None, &[])
    }

    /// [`Mqd::start`] with extra arguments (`--key value`) and, if given, a
    /// descriptor limit set as both the soft and the hard RLIMIT_NOFILE, so
    /// that mqd's raise to the hard limit cannot escape it.
    pub fn start_with(
        data: &Path,
        namesrv_port: u16,
        listen_port: u16,
        log: &Path,
        nofile: Option<u64>,
        extra: &[&str],
    ) -> Mqd {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the mqd log");
        let mut command = match nofile {
            // The shell's `ulimit -n` sets both limits, then execs mqd in the
            // same process, so the child's pid is mqd's.
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"ulimit -n "$0" && exec "$@""#])
                    .arg(limit.to_string())
                    .arg(env!("CARGO_BIN_EXE_mqd"));
                sh
            }
            None => Command::new(env!("CARGO_BIN_EXE_mqd")),
        };
        let child = command
            .arg("standalone")
            .arg("--data")
            .arg(data)
            .arg("--namesrv-listen")
            .arg(format!("127.0.0.1:{namesrv_port}"))
            .arg("--listen-port")
            .arg(listen_port.to_string())
            .args(["--mappedFileSizeCommitLog", "1048576"])
            .args(["--mappedFileSizeConsumeQueue", "6000"])
            .args(["--maxIndexNum", "2000", "--maxHashSlotNum", "500"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn mqd");
        let mut mqd = Mqd {
            child: Some(child),
            data: data.to_owned(),
            broker_addr: format!("127.0.0.1:{listen_port}"),
            log: log.to_owned(),
        };
        mqd.wait_ready();
        mqd
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mqd is running").id()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mqd exited early with {status}; log:\n{}", self.log_text());
            }
            let ready = smol::block_on(async {
                let Ok(client) =
                    RemotingClient::connect(&self.broker_addr, Duration::from_millis(500), None)
                        .await
                else {
                    return false;
                };
                let probe = request(req::GET_BROKER_RUNTIME_INFO, SerializeType::Json, &[]);
                matches!(
                    client.invoke(probe, Duration::from_millis(500)).await,
                    Ok(r) if r.code == resp::SUCCESS
                )
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mqd not ready in time; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (up to 20 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("mqd is running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait for mqd") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mqd did not exit within 20 s of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mqd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
