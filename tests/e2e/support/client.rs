//! Helpers for the client tests: a real `mqd standalone` on free loopback
//! ports, and reading a topic back with raw pulls.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::message::decode_messages;
use mq::{ClientInstance, MessageExt};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader};

/// A running `mqd standalone`, stopped with SIGTERM on drop.
pub struct Daemon {
    child: Child,
    dir: TempDir,
    /// The NameServer address.
    pub namesrv: String,
}

pub use super::tempdir::TempDir;

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The daemon's `--data` directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port P with P-2 and P+1 free too.
pub fn free_broker_port() -> u16 {
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

/// Starts `mqd standalone` with small files and waits until it listens.
pub fn start() -> Daemon {
    start_with(&[])
}

/// [`start`] with extra broker.conf keys (`--key value`).
pub fn start_with(extra: &[&str]) -> Daemon {
    let dir = TempDir::new("client");
    let ns = free_port();
    let broker = free_broker_port();
    let child = Command::new(env!("CARGO_BIN_EXE_mqd"))
        .args([
            "standalone",
            "--data",
            dir.path().to_str().unwrap(),
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
        .args(extra)
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
        dir,
        namesrv: format!("127.0.0.1:{ns}"),
    }
}

/// Every message of a topic, read with raw pulls, by queue.
pub fn pull_all(instance: &Arc<ClientInstance>, topic: &str, expect: usize) -> Vec<MessageExt> {
    smol::block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A topic created by its first send reaches the NameServer with
            // the broker's next registration, moments later.
            let route = match instance.update_route(topic).await {
                Ok(route) => route,
                Err(_) if Instant::now() < deadline => {
                    smol::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => panic!("no route for {topic}: {e}"),
            };
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
