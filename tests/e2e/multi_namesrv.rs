//! Several NameServers side by side: a broker registers with each, they never
//! talk to each other, and a client fails over from a dead one to a live one.


use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::client::{free_broker_port, free_port, TempDir};
use mq::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn mqd(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_mqd"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mqd"),
    )
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broker_registers_with_every_namesrv_and_clients_fail_over() {
    let dir = TempDir::new("multi-ns");
    let (ns1, ns2, broker) = (free_port(), free_port(), free_broker_port());
    let a = format!("127.0.0.1:{ns1}");
    let b = format!("127.0.0.1:{ns2}");
    let mut first = Some(mqd(&["namesrv", "--listen", &a]));
    let _second = mqd(&["namesrv", "--listen", &b]);
    wait_listening(ns1);
    wait_listening(ns2);
    let _broker = mqd(&[
        "broker",
        "--namesrvAddr",
        &format!("{a};{b}"),
        "--brokerIP1",
        "127.0.0.1",
        "--listenPort",
        &broker.to_string(),
        "--storePathRootDir",
        dir.path().to_str().unwrap(),
        "--mappedFileSizeCommitLog",
        "67108864",
        "--maxIndexNum",
        "100000",
        "--maxHashSlotNum",
        "10000",
    ]);
    wait_listening(broker);

    // Each NameServer learns the route from the broker itself.
    for ns in [&a, &b] {
        let instance = ClientInstance::start(ClientConfig::new(ns)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match smol::block_on(instance.fetch_route("TBW102")) {
                Ok(route) => {
                    assert_eq!(
                        route.broker_datas[0].broker_addrs[&0],
                        format!("127.0.0.1:{broker}")
                    );
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "{ns} never got the route: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
