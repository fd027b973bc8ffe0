//! Helpers for tests that drive a daemon with mq's Rust client: waiting for
//! a broker to register, and reading a topic back with raw pulls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::message::decode_messages;
use mq::{ClientInstance, MessageExt};
use mq_protocol::body::TopicRouteData;
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader};

/// TBW102's route from the NameServer(s) `instance` asks, once a broker has
/// registered there; fails after `secs` seconds.
pub fn registered(instance: &Arc<ClientInstance>, secs: u64) -> TopicRouteData {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match async_io::block_on(instance.fetch_route("TBW102")) {
            Ok(route) => return route,
            Err(e) => assert!(Instant::now() < deadline, "broker never registered: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every message of a topic, read with raw pulls, by queue.
pub fn pull_all(instance: &Arc<ClientInstance>, topic: &str, expect: usize) -> Vec<MessageExt> {
    async_io::block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A topic created by its first send reaches the NameServer with
            // the broker's next registration, moments later.
            let route = match instance.update_route(topic).await {
                Ok(route) => route,
                Err(_) if Instant::now() < deadline => {
                    async_io::Timer::after(Duration::from_millis(100)).await;
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
            async_io::Timer::after(Duration::from_millis(100)).await;
        }
    })
}
