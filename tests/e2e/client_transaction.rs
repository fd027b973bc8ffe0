//! Transactional messages end to end: the Rust transactional producer against
//! `mqd`: commit, rollback, and an unknown outcome resolved by the broker's
//! check-back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use mq::{
    ClientConfig, ClientInstance, Message, MessageExt, ProducerConfig, SendResult,
    TransactionListener, TransactionProducer, TransactionState,
};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;

struct Listener {
    checks: AtomicUsize,
}

impl TransactionListener for Listener {
    fn execute_local(&self, msg: &Message, _result: &SendResult) -> TransactionState {
        match msg.body.as_slice() {
            b"commit" => TransactionState::Commit,
            b"rollback" => TransactionState::Rollback,
            _ => TransactionState::Unknown,
        }
    }

    fn check_local(&self, msg: &MessageExt) -> TransactionState {
        self.checks.fetch_add(1, Ordering::SeqCst);
        assert_eq!(msg.body, b"unknown");
        // As sent: the real topic, not the broker's half topic.
        assert!(msg.topic.starts_with("Tx"), "checked under {}", msg.topic);
        TransactionState::Commit
    }
}

#[test]
fn commit_rollback_and_check_back() {
    let daemon = Standalone::start_with(&[
        "--transactionCheckInterval",
        "300",
        "--transactionTimeOut",
        "500",
    ]);
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let listener = Arc::new(Listener {
        checks: AtomicUsize::new(0),
    });
    let producer = TransactionProducer::start(
        instance.clone(),
        ProducerConfig::new("tx_group"),
        listener.clone(),
    )
    .unwrap();
    // The check goes to a producer of the group known from its heartbeat.
    async_io::block_on(instance.send_heartbeat_to_all_brokers());

    let topic = "TxTopic";
    for body in ["commit", "rollback", "unknown"] {
        let (result, state) =
            async_io::block_on(producer.send_in_transaction(&Message::new(topic, body))).unwrap();
        assert_eq!(
            result.transaction_id.as_deref(),
            Some(result.msg_id.as_str())
        );
        let expected = match body {
            "commit" => TransactionState::Commit,
            "rollback" => TransactionState::Rollback,
            _ => TransactionState::Unknown,
        };
        assert_eq!(state, expected);
    }
    async_io::block_on(instance.send_heartbeat_to_all_brokers());

    // The committed one appears at once; the unknown one after the check.
    let got = pull_all(&instance, topic, 2);
    let mut bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec!["commit", "unknown"], "rollback never appears");
    assert!(listener.checks.load(Ordering::SeqCst) >= 1);
    // Consumers see the message's own id and no half-message markers.
    for m in &got {
        assert!(!m.properties.contains_key("REAL_TOPIC"));
        assert_eq!(m.topic, topic);
    }
    async_io::block_on(producer.shutdown());
    instance.shutdown();
}

/// A listener that leaves every transaction open and counts the checks.
struct Undecided;

impl TransactionListener for Undecided {
    fn execute_local(&self, _msg: &Message, _result: &SendResult) -> TransactionState {
        TransactionState::Unknown
    }

    fn check_local(&self, _msg: &MessageExt) -> TransactionState {
        TransactionState::Unknown
    }
}

/// The next offset of the broker's half-message queue.
fn half_queue_max(instance: &Arc<ClientInstance>, broker: &str) -> i64 {
    let mut cmd = RemotingCommand::request(request::GET_MAX_OFFSET);
    cmd.put("topic", "RMQ_SYS_TRANS_HALF_TOPIC");
    cmd.put("queueId", 0);
    let resp = async_io::block_on(instance.invoke(broker, cmd, Duration::from_secs(3))).unwrap();
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
    resp.get("offset").unwrap().parse().unwrap()
}

#[test]
fn a_half_message_is_checked_again_after_its_producers_were_offline() {
    let daemon = Standalone::start_with(&[
        "--transactionCheckInterval",
        "200",
        "--transactionTimeOut",
        "200",
        // Enough rounds not to give up while the test waits.
        "--transactionCheckMax",
        "1000",
    ]);
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let route = registered(&instance, 20);
    let broker = route.broker_datas[0].broker_addrs[&0].clone();
    let topic = "TxOffline";
    // The first producer has a client (and connection) of its own, closed
    // after the send: then no producer of the group is online.
    let gone = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let producer = TransactionProducer::start(
        gone.clone(),
        ProducerConfig::new("tx_offline"),
        Arc::new(Undecided),
    )
    .unwrap();
    async_io::block_on(producer.send_in_transaction(&Message::new(topic, "unknown"))).unwrap();
    async_io::block_on(producer.shutdown());
    gone.shutdown();

    // With no producer of the group online, each round still puts the half
    // message back (its check count raised), so it is not skipped for good.
    let deadline = Instant::now() + Duration::from_secs(20);
    while half_queue_max(&instance, &broker) < 3 {
        assert!(
            Instant::now() < deadline,
            "the half message was not put back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A producer of the group comes back and commits when asked.
    let listener = Arc::new(Listener {
        checks: AtomicUsize::new(0),
    });
    let producer = TransactionProducer::start(
        instance.clone(),
        ProducerConfig::new("tx_offline"),
        listener.clone(),
    )
    .unwrap();
    // Heartbeats go to the brokers the client knows from its routes.
    async_io::block_on(instance.update_route(topic)).unwrap();
    async_io::block_on(instance.send_heartbeat_to_all_brokers());
    let got = pull_all(&instance, topic, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"unknown");
    assert!(listener.checks.load(Ordering::SeqCst) >= 1);
    async_io::block_on(producer.shutdown());
    instance.shutdown();
}

/// Commits when checked, and says so before it returns.
struct CommitsWhenChecked(std::sync::mpsc::SyncSender<()>);

impl TransactionListener for CommitsWhenChecked {
    fn execute_local(&self, _msg: &Message, _result: &SendResult) -> TransactionState {
        TransactionState::Unknown
    }

    fn check_local(&self, _msg: &MessageExt) -> TransactionState {
        let _ = self.0.try_send(());
        TransactionState::Commit
    }
}

#[test]
fn a_check_answered_just_before_shutdown_still_commits() {
    let daemon = Standalone::start_with(&[
        "--transactionCheckInterval",
        "300",
        "--transactionTimeOut",
        "500",
    ]);
    let producing = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let (checked, on_check) = std::sync::mpsc::sync_channel(16);
    let producer = TransactionProducer::start(
        producing.clone(),
        ProducerConfig::new("tx_answer_then_go"),
        Arc::new(CommitsWhenChecked(checked)),
    )
    .unwrap();
    async_io::block_on(producing.send_heartbeat_to_all_brokers());
    let topic = "TxAnswerThenGo";
    let (_, state) =
        async_io::block_on(producer.send_in_transaction(&Message::new(topic, "late"))).unwrap();
    assert_eq!(state, TransactionState::Unknown);
    async_io::block_on(producing.send_heartbeat_to_all_brokers());
    on_check
        .recv_timeout(Duration::from_secs(20))
        .expect("a check-back");
    // The answer is decided: shutting down at once must not lose it (as a
    // C program does, closing right after mq_txn_check_answer).
    async_io::block_on(producer.shutdown());
    producing.shutdown();

    let reading = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let got = pull_all(&reading, topic, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"late");
    reading.shutdown();
}
