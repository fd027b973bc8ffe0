//! The Rust producer against a real `mqd standalone`: every send mode, batches,
//! ordered sends, compression; read back with raw PULL_MESSAGE requests.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mq::client::message::decode_messages;
use mq::client::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig, SendStatus};
use mq::protocol::codes::{request, response};
use mq::protocol::headers::{CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader};
use mq::protocol::remoting::RemotingCommand;

struct Daemon {
    child: Child,
    _dir: TempDir,
    namesrv: String,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_broker_port() -> u16 {
    loop {
        let p = free_port();
        if p > 3
            && TcpListener::bind(("127.0.0.1", p - 2)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

fn start() -> Daemon {
    let dir = std::env::temp_dir().join(format!(
        "mq-client-it-{}-{}",
        std::process::id(),
        free_port()
    ));
    let ns = free_port();
    let broker = free_broker_port();
    let child = Command::new(env!("CARGO_BIN_EXE_mqd"))
        .args([
            "standalone",
            "--data",
            dir.to_str().unwrap(),
            "--namesrv-listen",
            &format!("127.0.0.1:{ns}"),
            "--listen-port",
            &broker.to_string(),
            "--mappedFileSizeCommitLog",
            "67108864",
            "--maxIndexNum",
            "100000",
            "--maxHashSlotNum",
            "10000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mqd");
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [ns, broker] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mqd did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Daemon {
        child,
        _dir: TempDir(dir),
        namesrv: format!("127.0.0.1:{ns}"),
    }
}

/// Every message of a topic, read with raw pulls, by queue.
fn pull_all(
    instance: &std::sync::Arc<ClientInstance>,
    topic: &str,
    expect: usize,
) -> Vec<mq::client::MessageExt> {
    smol::block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let route = instance.update_route(topic).await.unwrap();
            let mut all = Vec::new();
            for qd in &route.queue_datas {
                let addr = instance.master_addr(&qd.broker_name).unwrap();
                for q in 0..qd.read_queue_nums {
                    let mut offset = 0;
                    loop {
                        let mut cmd = RemotingCommand::request(request::PULL_MESSAGE);
                        PullMessageRequestHeader {
                            consumer_group: "it_reader".into(),
                            topic: topic.into(),
                            queue_id: q,
                            queue_offset: offset,
                            max_msg_nums: 32,
                            sys_flag: 0,
                            commit_offset: 0,
                            suspend_timeout_millis: 0,
                            subscription: Some("*".into()),
                            sub_version: 0,
                            expression_type: None,
                        }
                        .encode(&mut cmd.ext_fields);
                        let resp = instance
                            .invoke(&addr, cmd, Duration::from_secs(3))
                            .await
                            .unwrap();
                        if resp.code != response::SUCCESS {
                            break;
                        }
                        let h = PullMessageResponseHeader::decode(&resp.ext_fields).unwrap();
                        all.extend(decode_messages(&resp.body, &qd.broker_name).unwrap());
                        offset = h.next_begin_offset;
                    }
                }
            }
            if all.len() >= expect || Instant::now() > deadline {
                return all;
            }
            smol::Timer::after(Duration::from_millis(100)).await;
        }
    })
}

#[test]
fn rust_producer_sends_in_every_mode() {
    let daemon = start();
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let producer = Producer::start(instance.clone(), ProducerConfig::new("it_producer")).unwrap();
    let topic = "RustProducerTopic";
    // The broker registers with the NameServer right after it starts; the
    // first send may come before that, so wait for TBW102's route.
    let deadline = Instant::now() + Duration::from_secs(20);
    while smol::block_on(instance.fetch_route("TBW102")).is_err() {
        assert!(Instant::now() < deadline, "broker never registered");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut expected = BTreeMap::new();
    // Sync, with tags and keys.
    for i in 0..20 {
        let body = format!("sync-{i}");
        let msg = Message::new(topic, body.clone())
            .with_tags("TagA")
            .with_keys([format!("k{i}")]);
        let r = producer.send_blocking(&msg).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.msg_id.len(), 32);
        assert_eq!(r.offset_msg_id.len(), 32);
        expected.insert(body, r.msg_id);
    }
    // Compressed (over 4 KiB): consumers must see the original bytes.
    let big = "x".repeat(10_000);
    let r = producer
        .send_blocking(&Message::new(topic, big.clone()))
        .unwrap();
    expected.insert(big.clone(), r.msg_id);
    // Async.
    let (tx, rx) = mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        producer.send_async(Message::new(topic, format!("async-{i}")), move |r| {
            tx.send(r.map(|r| r.msg_id)).unwrap();
        });
    }
    for _ in 0..20 {
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().is_ok());
    }
    // One-way.
    for i in 0..10 {
        smol::block_on(producer.send_oneway(&Message::new(topic, format!("oneway-{i}")))).unwrap();
    }
    // Batch.
    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new(topic, format!("batch-{i}")))
        .collect();
    let r = smol::block_on(producer.send_batch(&batch)).unwrap();
    assert_eq!(r.msg_id.split(',').count(), 10);
    assert_eq!(r.offset_msg_id.split(',').count(), 10);
    // Ordered: one key, one queue, in order.
    let mut ordered_queue = None;
    for i in 0..10 {
        let r = smol::block_on(
            producer.send_ordered(&Message::new(topic, format!("ordered-{i}")), "order-42"),
        )
        .unwrap();
        assert_eq!(
            *ordered_queue.get_or_insert(r.queue.queue_id),
            r.queue.queue_id
        );
    }

    let all = pull_all(&instance, topic, 71);
    assert_eq!(all.len(), 71, "every message arrives once");
    let by_body: BTreeMap<String, &mq::client::MessageExt> = all
        .iter()
        .map(|m| (String::from_utf8(m.body.clone()).unwrap(), m))
        .collect();
    for (body, id) in &expected {
        assert_eq!(&by_body[body].msg_id, id, "{body}");
    }
    assert_eq!(by_body["sync-3"].tags(), Some("TagA"));
    assert_eq!(by_body["sync-3"].keys(), vec!["k3"]);
    assert!(by_body[&big].sys_flag & 1 != 0, "stored compressed");
    let ordered: Vec<i64> = (0..10)
        .map(|i| by_body[&format!("ordered-{i}")].queue_offset)
        .collect();
    assert!(
        ordered.windows(2).all(|w| w[0] < w[1]),
        "ordered sends keep their order"
    );

    smol::block_on(producer.shutdown());
    instance.shutdown();
}

#[test]
fn producer_errors_are_clear() {
    let daemon = start();
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let producer = Producer::start(instance.clone(), ProducerConfig::new("it_producer2")).unwrap();
    let err = producer.send_blocking(&Message::new("T", "")).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let err = producer.send_blocking(&Message::new("", "x")).unwrap_err();
    assert!(err.to_string().contains("topic"), "{err}");
    // No NameServer at all.
    let nowhere =
        ClientInstance::start(ClientConfig::new(&format!("127.0.0.1:{}", free_port()))).unwrap();
    let lost = Producer::start(nowhere.clone(), ProducerConfig::new("g")).unwrap();
    assert!(lost.send_blocking(&Message::new("T", "x")).is_err());
    instance.shutdown();
    nowhere.shutdown();
}
