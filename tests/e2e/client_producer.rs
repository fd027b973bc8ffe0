//! The Rust producer against a real `mqd standalone`: every send mode, batches,
//! ordered sends, compression; read back with raw PULL_MESSAGE requests.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;
use mq::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig, SendStatus};

#[test]
fn rust_producer_sends_in_every_mode() {
    // Started once its broker has registered: the first send finds a route.
    let daemon = Standalone::start();
    let instance = ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap();
    let producer = Producer::start(instance.clone(), ProducerConfig::new("it_producer")).unwrap();
    let topic = "RustProducerTopic";

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
        async_io::block_on(producer.send_oneway(&Message::new(topic, format!("oneway-{i}"))))
            .unwrap();
    }
    // Batch.
    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new(topic, format!("batch-{i}")))
        .collect();
    let r = async_io::block_on(producer.send_batch(&batch)).unwrap();
    assert_eq!(r.msg_id.split(',').count(), 10);
    assert_eq!(r.offset_msg_id.split(',').count(), 10);
    // Ordered: one key, one queue, in order.
    let mut ordered_queue = None;
    for i in 0..10 {
        let r = async_io::block_on(
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
    let by_body: BTreeMap<String, &mq::MessageExt> = all
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

    async_io::block_on(producer.shutdown());
    instance.shutdown();
}

#[test]
fn producer_errors_are_clear() {
    let daemon = Standalone::start();
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
