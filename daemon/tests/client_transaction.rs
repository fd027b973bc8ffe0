//! Transactional messages end to end: the Rust transactional producer against
//! `mqd`: commit, rollback, and an unknown outcome resolved by the broker's
//! check-back.

mod client_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_support::{pull_all, start_with};
use mq::client::{
    ClientConfig, ClientInstance, Message, MessageExt, ProducerConfig, SendResult,
    TransactionListener, TransactionProducer, TransactionState,
};

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
        TransactionState::Commit
    }
}

#[test]
fn commit_rollback_and_check_back() {
    let daemon = start_with(&[
        "--transactionCheckInterval",
        "300",
        "--transactionTimeOut",
        "500",
    ]);
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while smol::block_on(instance.fetch_route("TBW102")).is_err() {
        assert!(Instant::now() < deadline, "broker never registered");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    smol::block_on(instance.send_heartbeat_to_all_brokers());

    let topic = "TxTopic";
    for body in ["commit", "rollback", "unknown"] {
        let (result, state) =
            smol::block_on(producer.send_in_transaction(&Message::new(topic, body))).unwrap();
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
    smol::block_on(instance.send_heartbeat_to_all_brokers());

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
    smol::block_on(producer.shutdown());
    instance.shutdown();
}
