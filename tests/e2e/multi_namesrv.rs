//! Several NameServers side by side: a broker registers with each, they never
//! talk to each other, and a client fails over from a dead one to a live one.

use mq::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig};

use crate::support::*;

#[test]
fn a_broker_registers_with_every_namesrv_and_clients_fail_over() {
    let dir = TempDir::new("multi-ns");
    let (ns1, ns2, broker) = (free_port(), free_port(), free_broker_port());
    let a = local(ns1).to_string();
    let b = local(ns2).to_string();
    let namesrv = |addr: &str, log: &str| {
        MqdCommand::new(
            "mqd namesrv",
            &["namesrv", "--listen", addr],
            &dir.path().join(log),
        )
        .ready_at(addr.parse().expect("an address"))
        .start()
    };
    let mut first = Some(namesrv(&a, "namesrv-1.log"));
    let _second = namesrv(&b, "namesrv-2.log");
    let _broker = MqdCommand::new("mqd broker", &["broker"], &dir.path().join("broker.log"))
        .args(flags(&[
            ("namesrvAddr", format!("{a};{b}").as_str()),
            ("brokerIP1", "127.0.0.1"),
            ("listenPort", broker.to_string().as_str()),
            (
                "storePathRootDir",
                dir.path().join("data").display().to_string().as_str(),
            ),
            ("mappedFileSizeCommitLog", "67108864"),
            ("maxIndexNum", "100000"),
            ("maxHashSlotNum", "10000"),
        ]))
        .ready_at(local(broker))
        .start();

    // Each NameServer learns the route from the broker itself.
    for ns in [&a, &b] {
        let instance = ClientInstance::start(ClientConfig::new(ns)).unwrap();
        let route = registered(&instance, 20);
        assert_eq!(
            route.broker_datas[0].broker_addrs[&0],
            local(broker).to_string(),
            "the route {ns} has"
        );
        instance.shutdown();
    }

    // With the first NameServer gone, a client configured with both still sends.
    drop(first.take());
    let instance = ClientInstance::start(ClientConfig::new(&format!("{a};{b}"))).unwrap();
    let producer = Producer::start(instance.clone(), ProducerConfig::new("multi_ns")).unwrap();
    let result = producer
        .send_blocking(&Message::new("MultiNsTopic", "hello"))
        .unwrap();
    assert_eq!(result.queue.broker_name, "broker-a");
    instance.shutdown();
}
