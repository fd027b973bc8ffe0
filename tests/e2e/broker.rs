//! End-to-end tests of the Broker: an in-process NameServer and Broker on free
//! loopback ports (and, for shutdown and restart, the `mqd` binary), driven
//! over TCP with the client's `RemotingClient` and, for peers that misbehave or
//! for the odd-but-valid forms other clients send, with raw frames.
//!
//! Every request code the broker serves is exercised in both header
//! serializations; every response must come back in the request's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use mq::connection::RemotingClient;
use mq_protocol::body::{
    ConsumeStats, ConsumeType, ConsumerConnection, ConsumerOffsetSerializeWrapper, DataVersion,
    GroupList, KvTable, LockBatchResponseBody, MessageModel, MessageQueue, ProducerConnection,
    ResetOffsetBody, SubscriptionGroupConfig, SubscriptionGroupWrapper,
    TopicConfigSerializeWrapper, TopicList, TopicRouteData, TopicStatsTable,
};
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{LanguageCode, RemotingCommand, SerializeType, CURRENT_VERSION};
use mq_protocol::headers::pull_sys_flag;
use mq_protocol::message::{decode_offset_msg_id, encode_batch_item, BatchItem};
use mq_protocol::properties;

use crate::support::*;

use futures_lite::io::AsyncWriteExt;

const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

fn run<F: std::future::Future<Output = ()>>(f: F) {
    async_io::block_on(f)
}

/// Busy-waits (1 ms steps) until the wall clock has moved `ms` past now, so
/// the next stored message gets a later store timestamp.
fn let_clock_advance(ms: i64) {
    let until = now_ms() + ms;
    while now_ms() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn runtime_info(client: &RemotingClient) -> BTreeMap<String, String> {
    let response = call_ok(
        client,
        request(req::GET_BROKER_RUNTIME_INFO, SerializeType::Json, &[]),
    )
    .await;
    KvTable::decode(&response.body).expect("KvTable").table
}

async fn all_topics(client: &RemotingClient) -> TopicConfigSerializeWrapper {
    let response = call_ok(
        client,
        request(req::GET_ALL_TOPIC_CONFIG, SerializeType::Json, &[]),
    )
    .await;
    TopicConfigSerializeWrapper::decode(&response.body).expect("topic config wrapper")
}

fn mq_json(topic: &str, queue_ids: &[i32]) -> String {
    let items: Vec<String> = queue_ids
        .iter()
        .map(|q| format!(r#"{{"brokerName":"{BROKER_NAME}","queueId":{q},"topic":"{topic}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

fn lock_request(
    code: i32,
    ser: SerializeType,
    client_id: &str,
    group: &str,
    topic: &str,
    queue_ids: &[i32],
) -> RemotingCommand {
    let mut cmd = request(code, ser, &[]);
    cmd.body = format!(
        r#"{{"clientId":"{client_id}","consumerGroup":"{group}","mqSet":{}}}"#,
        mq_json(topic, queue_ids)
    )
    .into_bytes();
    cmd
}

fn locked_queue_ids(response: &RemotingCommand) -> Vec<i32> {
    LockBatchResponseBody::decode(&response.body)
        .expect("lock response body")
        .lock_ok_mq_set
        .iter()
        .map(|mq| mq.queue_id)
        .collect()
}

/// The `delayOffset.json` / GET_ALL_DELAY_OFFSET body: level → offset, with
/// fastjson's bare numeric keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DelayOffsets {
    offset_table: BTreeMap<i32, i64>,
}

// ---------------------------------------------------------------------------
// Sends and pulls

#[test]
fn every_send_form_is_stored_and_answered_in_the_request_serialization() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "SendForms", 2).await;
        // (body, flag, tag) in queue order.
        let mut expected: Vec<(String, i32, String)> = Vec::new();
        let mut phys = Vec::new();
        for ser in BOTH {
            // SEND_MESSAGE (10) with the long field names.
            let body = format!("v1-{ser:?}");
            let p = props(&[("TAGS", "TagV1"), ("KEYS", "k-v1"), ("WAIT", "true")]);
            let born = now_ms().to_string();
            let mut cmd = request(
                req::SEND_MESSAGE,
                ser,
                &[
                    ("producerGroup", "PG"),
                    ("topic", "SendForms"),
                    ("defaultTopic", "TBW102"),
                    ("defaultTopicQueueNums", "4"),
                    ("queueId", "0"),
                    ("sysFlag", "0"),
                    ("bornTimestamp", &born),
                    ("flag", "7"),
                    ("properties", &p),
                    ("reconsumeTimes", "0"),
                    ("unitMode", "false"),
                    ("batch", "false"),
                ],
            );
            cmd.body = body.clone().into_bytes();
            let r = call(c, cmd).await;
            let s = sent(&r);
            assert_eq!(s.msg_id.len(), 32, "an IPv4 offset message id");
            assert_eq!((s.queue_id, s.queue_offset), (0, expected.len() as i64));
            assert_eq!(r.get("MSG_REGION"), Some("DefaultRegion"));
            assert_eq!(r.get("TRACE_ON"), Some("true"));
            let (host, _) = decode_offset_msg_id(&s.msg_id).expect("offset id");
            assert_eq!(host.to_string(), b.addr, "the id names the store host");
            expected.push((body, 7, "TagV1".into()));
            phys.push(s.phys);

            // SEND_MESSAGE_V2 (310).
            let body = format!("v2-{ser:?}");
            let r = call(
                c,
                send_v2(
                    ser,
                    "SendForms",
                    0,
                    body.as_bytes(),
                    &props(&[("TAGS", "TagV2")]),
                ),
            )
            .await;
            let s = sent(&r);
            assert_eq!(s.queue_offset, expected.len() as i64);
            assert!(r.get("MSG_REGION").is_some() && r.get("TRACE_ON").is_some());
            expected.push((body, 0, "TagV2".into()));
            phys.push(s.phys);

            // SEND_BATCH_MESSAGE (320): three messages with their own properties.
            let mut batch = Vec::new();
            let mut batch_props = Vec::new();
            for i in 0..3 {
                batch_props.push(props(&[
                    ("TAGS", &format!("TagB{i}")),
                    ("UNIQ_KEY", &format!("{:032X}", 0xB000 + i)),
                ]));
            }
            let batch_bodies: Vec<String> = (0..3).map(|i| format!("batch-{ser:?}-{i}")).collect();
            for i in 0..3 {
                encode_batch_item(
                    &BatchItem {
                        flag: i,
                        body: batch_bodies[i as usize].as_bytes(),
                        properties: &batch_props[i as usize],
                    },
                    &mut batch,
                )
                .expect("encode a batch item");
            }
            let mut cmd = send_v2(ser, "SendForms", 0, &batch, "");
            cmd.code = req::SEND_BATCH_MESSAGE;
            cmd.put("m", "true");
            let r = call(c, cmd).await;
            let s = sent(&r);
            let ids: Vec<&str> = s.msg_id.split(',').collect();
            assert_eq!(
                ids.len(),
                3,
                "one offset id per batch message: {}",
                s.msg_id
            );
            assert_eq!(s.queue_offset, expected.len() as i64, "first of the batch");
            for (i, id) in ids.iter().enumerate() {
                let (_, p) = decode_offset_msg_id(id).expect("offset id");
                phys.push(p);
                expected.push((batch_bodies[i].clone(), i as i32, format!("TagB{i}")));
            }
        }
        wait_max_offset(c, "SendForms", 0, expected.len() as i64).await;
        let r = call_ok(
            c,
            Pull::new("G", "SendForms", 0, 0).command(SerializeType::Json),
        )
        .await;
        let msgs = records(&r.body);
        assert_eq!(msgs.len(), expected.len());
        for (i, (m, (body, flag, tag))) in msgs.iter().zip(&expected).enumerate() {
            assert_eq!(std::str::from_utf8(m.body).expect("utf-8"), body);
            assert_eq!(m.flag, *flag, "{body}");
            assert_eq!(m.topic, "SendForms");
            assert_eq!((m.queue_id, m.queue_offset), (0, i as i64));
            assert_eq!(
                m.physical_offset, phys[i],
                "msgId names the record's offset"
            );
            assert_eq!(m.store_host.to_string(), b.addr);
            assert_eq!(m.born_host.ip().to_string(), "127.0.0.1");
            assert_eq!(properties::get(m.properties, "TAGS"), Some(tag.as_str()));
            assert_eq!(
                properties::get(m.properties, "CLUSTER"),
                Some("DefaultCluster"),
                "the broker adds its cluster"
            );
        }
    });
}

#[test]
fn responses_echo_the_opaque_in_both_serializations() {
    let b = TestBroker::start();
    run(async {
        let mut s = raw(&b.addr).await;
        let mut sent = Vec::new();
        // Pipelined: all written before any is read.
        for ser in BOTH {
            for opaque in [0, -7, i32::MAX, 123_456] {
                let mut cmd = request(
                    req::GET_MAX_OFFSET,
                    ser,
                    &[("topic", "TBW102"), ("queueId", "0")],
                );
                cmd.opaque = opaque;
                write_cmd(&mut s, &cmd).await;
                sent.push((opaque, format!("{ser:?}")));
            }
        }
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            let r = next_frame(&mut s).await;
            assert!(r.is_response());
            assert!(!r.is_oneway());
            assert_eq!(r.code, resp::SUCCESS);
            assert_eq!(r.version, CURRENT_VERSION);
            got.push((r.opaque, format!("{:?}", r.serialize_type)));
        }
        sent.sort();
        got.sort();
        assert_eq!(
            got, sent,
            "each response carries its request's opaque and type"
        );
    });
}

#[test]
fn pull_returns_stored_messages_and_queue_bounds() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "PullT", 2).await;
        for i in 0..3 {
            send(c, "PullT", 0, format!("m{i}").as_bytes(), "").await;
        }
        wait_max_offset(c, "PullT", 0, 3).await;
        for ser in BOTH {
            let mut pull = Pull::new("PullGroup", "PullT", 0, 0);
            pull.max = 2;
            let r = call_ok(c, pull.command(ser)).await;
            assert_eq!(bodies(&r.body), ["m0", "m1"]);
            assert_eq!(field_i64(&r, "nextBeginOffset"), 2);
            assert_eq!(field_i64(&r, "minOffset"), 0);
            assert_eq!(field_i64(&r, "maxOffset"), 3);
            assert_eq!(field_i64(&r, "suggestWhichBrokerId"), 0);

            let r = call_ok(c, Pull::new("PullGroup", "PullT", 0, 2).command(ser)).await;
            assert_eq!(bodies(&r.body), ["m2"]);
            assert_eq!(field_i64(&r, "nextBeginOffset"), 3);

            // At the end, without FLAG_SUSPEND: answered at once.
            let r = call(c, Pull::new("PullGroup", "PullT", 0, 3).command(ser)).await;
            assert_eq!(r.code, resp::PULL_NOT_FOUND, "{:?}", r.remark);
            assert_eq!(field_i64(&r, "nextBeginOffset"), 3);
            assert!(r.body.is_empty());

            // Beyond the end: the offset is illegal.
            let r = call(c, Pull::new("PullGroup", "PullT", 0, 10).command(ser)).await;
            assert_eq!(r.code, resp::PULL_OFFSET_MOVED, "{:?}", r.remark);
            assert_eq!(field_i64(&r, "maxOffset"), 3);

            // An empty queue: NOT_FOUND at 0, OFFSET_MOVED elsewhere.
            let r = call(c, Pull::new("PullGroup", "PullT", 1, 0).command(ser)).await;
            assert_eq!(r.code, resp::PULL_NOT_FOUND, "{:?}", r.remark);
            let r = call(c, Pull::new("PullGroup", "PullT", 1, 5).command(ser)).await;
            assert_eq!(r.code, resp::PULL_OFFSET_MOVED, "{:?}", r.remark);

            let r = call(c, Pull::new("PullGroup", "NoSuchTopic", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::TOPIC_NOT_EXIST, "{:?}", r.remark);
            let r = call(c, Pull::new("PullGroup", "PullT", 2, 0).command(ser)).await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "queue 2 of a 2-queue topic");
            assert!(r.remark.as_deref().unwrap_or("").contains("queueId"));
        }
    });
}

/// Protocol reference §4.5: "Broker puts the store's GetMessageStatus name
/// (`FOUND`, `NO_MESSAGE_IN_QUEUE`, `OFFSET_OVERFLOW_ONE`, ...) in `remark`".
#[test]
fn pull_remark_names_the_store_status_as_java_does() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Remark", 1).await;
        send(c, "Remark", 0, b"x", "").await;
        wait_max_offset(c, "Remark", 0, 1).await;
        let r = call_ok(
            c,
            Pull::new("G", "Remark", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(r.remark.as_deref(), Some("FOUND"));
        let r = call(
            c,
            Pull::new("G", "Remark", 0, 1).command(SerializeType::Json),
        )
        .await;
        assert_eq!(r.remark.as_deref(), Some("OFFSET_OVERFLOW_ONE"));
    });
}

#[test]
fn pull_filters_by_the_tag_expression() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Tags", 1).await;
        for (body, tag) in [
            ("a1", Some("TagA")),
            ("b1", Some("TagB")),
            ("c1", Some("TagC")),
            ("n1", None),
            ("a2", Some("TagA")),
        ] {
            let p = tag.map_or_else(String::new, |t| props(&[("TAGS", t)]));
            send(c, "Tags", 0, body.as_bytes(), &p).await;
        }
        wait_max_offset(c, "Tags", 0, 5).await;
        for ser in BOTH {
            let with_sub = |expr: &'static str| {
                let mut p = Pull::new("TagGroup", "Tags", 0, 0);
                p.sys_flag = pull_sys_flag::SUBSCRIPTION;
                p.subscription = Some(expr);
                p.command(ser)
            };
            let r = call_ok(c, with_sub("TagA || TagB")).await;
            assert_eq!(bodies(&r.body), ["a1", "b1", "a2"]);
            assert_eq!(field_i64(&r, "nextBeginOffset"), 5);
            let r = call_ok(c, with_sub("TagC")).await;
            assert_eq!(bodies(&r.body), ["c1"]);
            let r = call_ok(c, with_sub("*")).await;
            assert_eq!(bodies(&r.body).len(), 5);
            let r = call(c, with_sub("TagZ")).await;
            assert_eq!(r.code, resp::PULL_RETRY_IMMEDIATELY, "{:?}", r.remark);
            assert_eq!(
                field_i64(&r, "nextBeginOffset"),
                5,
                "filtered ones are skipped"
            );
        }
        // Without FLAG_SUBSCRIPTION the group's heartbeat subscription applies.
        call_ok(
            c,
            heartbeat(
                SerializeType::Json,
                LanguageCode::Java,
                consumer_heartbeat("127.0.0.1@tags", "HbTagGroup", "Tags", "TagB || TagC"),
            ),
        )
        .await;
        let r = call_ok(
            c,
            Pull::new("HbTagGroup", "Tags", 0, 0).command(SerializeType::RocketMq),
        )
        .await;
        assert_eq!(bodies(&r.body), ["b1", "c1"]);
    });
}

#[test]
fn suspended_pull_times_out_with_pull_not_found() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Quiet", 2).await;
        let pull = |ser: SerializeType, queue: i32| {
            let mut p = Pull::new("QuietGroup", "Quiet", queue, 0);
            p.sys_flag = pull_sys_flag::SUSPEND;
            p.suspend_ms = 300;
            p.command(ser)
        };
        let started = Instant::now();
        let (json, binary) = futures_lite::future::zip(
            call(c, pull(SerializeType::Json, 0)),
            call(c, pull(SerializeType::RocketMq, 1)),
        )
        .await;
        let elapsed = started.elapsed();
        for r in [&json, &binary] {
            assert_eq!(r.code, resp::PULL_NOT_FOUND, "{:?}", r.remark);
            assert_eq!(field_i64(r, "nextBeginOffset"), 0);
        }
        assert!(
            elapsed >= Duration::from_millis(250),
            "held for its suspend time, not answered at once: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "released on time: {elapsed:?}"
        );
    });
}

#[test]
fn long_polling_pull_is_answered_as_soon_as_a_message_arrives() {
    let b = TestBroker::start();
    run(async {
        let consumer = b.client().await;
        let consumer: &RemotingClient = &consumer;
        let producer = b.client().await;
        let producer: &RemotingClient = &producer;
        create_topic(producer, "LongPoll", 2).await;
        let pull = |ser: SerializeType, queue: i32| {
            let mut p = Pull::new("LpGroup", "LongPoll", queue, 0);
            p.sys_flag = pull_sys_flag::SUSPEND | pull_sys_flag::COMMIT_OFFSET;
            p.suspend_ms = 10_000;
            p.command(ser)
        };
        let waiting = async {
            let r = call(consumer, pull(SerializeType::Json, 0)).await;
            (r, Instant::now())
        };
        let waiting_binary = async {
            let r = call(consumer, pull(SerializeType::RocketMq, 1)).await;
            (r, Instant::now())
        };
        let sender = async {
            // Both pulls must be parked before the messages go out.
            eventually("two parked pulls", TIMEOUT, || async move {
                let info = runtime_info(producer).await;
                (info.get("pullHoldingRequests").map(String::as_str) == Some("2")).then_some(())
            })
            .await;
            let at = Instant::now();
            send(producer, "LongPoll", 0, b"wake-0", "").await;
            send(producer, "LongPoll", 1, b"wake-1", "").await;
            at
        };
        let (((r0, t0), (r1, t1)), sent_at) =
            futures_lite::future::zip(futures_lite::future::zip(waiting, waiting_binary), sender)
                .await;
        for (r, t, body) in [(&r0, t0, "wake-0"), (&r1, t1, "wake-1")] {
            assert_eq!(r.code, resp::SUCCESS, "{:?}", r.remark);
            assert_eq!(bodies(&r.body), [body]);
            assert_eq!(field_i64(r, "nextBeginOffset"), 1);
            let latency = t.duration_since(sent_at);
            assert!(
                latency < Duration::from_millis(1500),
                "a parked pull must be answered when its message arrives, not after the \
                 10 s suspend: took {latency:?}"
            );
        }
        assert_eq!(r0.serialize_type, SerializeType::Json);
        assert_eq!(r1.serialize_type, SerializeType::RocketMq);
    });
}

#[test]
fn commit_offset_flag_stores_the_consumer_offset() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Commit", 1).await;
        for i in 0..3 {
            send(c, "Commit", 0, format!("c{i}").as_bytes(), "").await;
        }
        wait_max_offset(c, "Commit", 0, 3).await;
        for (ser, committed) in [(SerializeType::Json, 1), (SerializeType::RocketMq, 2)] {
            let mut p = Pull::new("CommitGroup", "Commit", 0, committed);
            p.sys_flag = pull_sys_flag::COMMIT_OFFSET;
            p.commit_offset = committed;
            call_ok(c, p.command(ser)).await;
            assert_eq!(
                query_offset(c, ser, "CommitGroup", "Commit", 0).await,
                (resp::SUCCESS, Some(committed))
            );
        }
        // Without the flag nothing is committed.
        let mut p = Pull::new("CommitGroup", "Commit", 0, 0);
        p.commit_offset = 3;
        call_ok(c, p.command(SerializeType::Json)).await;
        assert_eq!(
            query_offset(c, SerializeType::Json, "CommitGroup", "Commit", 0).await,
            (resp::SUCCESS, Some(2))
        );
    });
}

#[test]
fn a_message_for_another_queue_does_not_wake_a_parked_pull() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "TwoLanes", 2).await;
        let mut p = Pull::new("LaneGroup", "TwoLanes", 0, 0);
        p.sys_flag = pull_sys_flag::SUSPEND;
        p.suspend_ms = 1200;
        let started = Instant::now();
        let (r, ()) = futures_lite::future::zip(call(c, p.command(SerializeType::Json)), async {
            eventually("the pull to be parked", TIMEOUT, || async move {
                let info = runtime_info(c).await;
                (info.get("pullHoldingRequests").map(String::as_str) == Some("1")).then_some(())
            })
            .await;
            send(c, "TwoLanes", 1, b"other lane", "").await;
        })
        .await;
        assert_eq!(r.code, resp::PULL_NOT_FOUND, "{:?}", r.remark);
        assert!(
            started.elapsed() >= Duration::from_millis(1100),
            "held until its timeout: {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn pulls_return_at_most_32_messages() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Many", 1).await;
        for i in 0..40 {
            send(c, "Many", 0, format!("n{i}").as_bytes(), "").await;
        }
        wait_max_offset(c, "Many", 0, 40).await;
        let mut p = Pull::new("ManyGroup", "Many", 0, 0);
        p.max = 100;
        let r = call_ok(c, p.command(SerializeType::RocketMq)).await;
        assert_eq!(records(&r.body).len(), 32);
        assert_eq!(field_i64(&r, "nextBeginOffset"), 32);
        let r = call_ok(
            c,
            Pull::new("ManyGroup", "Many", 0, 32).command(SerializeType::Json),
        )
        .await;
        assert_eq!(records(&r.body).len(), 8);
    });
}

#[test]
fn topic_and_group_permissions_are_enforced() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        let create = |topic: &'static str, perm: &'static str| {
            request(
                req::UPDATE_AND_CREATE_TOPIC,
                SerializeType::Json,
                &[
                    ("topic", topic),
                    ("defaultTopic", "TBW102"),
                    ("readQueueNums", "1"),
                    ("writeQueueNums", "1"),
                    ("perm", perm),
                    ("topicFilterType", "SINGLE_TAG"),
                ],
            )
        };
        call_ok(c, create("ReadOnly", "4")).await;
        call_ok(c, create("WriteOnly", "2")).await;
        let mut group = request(
            req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
            SerializeType::Json,
            &[],
        );
        group.body = SubscriptionGroupConfig {
            group_name: "Disabled".into(),
            consume_enable: false,
            ..SubscriptionGroupConfig::default()
        }
        .encode();
        call_ok(c, group).await;
        for ser in BOTH {
            let r = call(c, send_v2(ser, "ReadOnly", 0, b"x", "")).await;
            assert_eq!(r.code, resp::NO_PERMISSION, "{:?}", r.remark);
            sent(&call(c, send_v2(ser, "WriteOnly", 0, b"x", "")).await);
            let r = call(c, Pull::new("G", "WriteOnly", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::NO_PERMISSION, "{:?}", r.remark);
            let r = call(c, Pull::new("G", "ReadOnly", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::PULL_NOT_FOUND, "{:?}", r.remark);
            let r = call(c, Pull::new("Disabled", "ReadOnly", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::NO_PERMISSION, "{:?}", r.remark);
        }
    });
}

#[test]
fn sends_to_a_retry_topic_go_to_the_dlq_past_max_reconsume_times() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        // The Java client's fallback when CONSUMER_SEND_MSG_BACK fails: it
        // sends to %RETRY%<group> itself, with reconsumeTimes (j) and max (l).
        for (ser, times, body) in [
            (SerializeType::Json, "0", "retry-0"),
            (SerializeType::RocketMq, "3", "retry-3"),
            (SerializeType::Json, "16", "dead-16"),
            (SerializeType::RocketMq, "20", "dead-20"),
        ] {
            let mut cmd = send_v2(
                ser,
                "%RETRY%FallbackGroup",
                0,
                body.as_bytes(),
                &props(&[("RETRY_TOPIC", "Orig"), ("TAGS", "TagF")]),
            );
            cmd.put("j", times).put("l", "16");
            sent(&call(c, cmd).await);
        }
        wait_max_offset(c, "%RETRY%FallbackGroup", 0, 2).await;
        wait_max_offset(c, "%DLQ%FallbackGroup", 0, 2).await;
        let r = call_ok(
            c,
            Pull::new("FallbackGroup", "%RETRY%FallbackGroup", 0, 0).command(SerializeType::Json),
        )
        .await;
        let msgs = records(&r.body);
        assert_eq!(bodies(&r.body), ["retry-0", "retry-3"]);
        assert_eq!(msgs[1].reconsume_times, 3);
        let r = call_ok(
            c,
            Pull::new("FallbackGroup", "%DLQ%FallbackGroup", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(bodies(&r.body), ["dead-16", "dead-20"]);
    });
}

/// With `autoCreateSubscriptionGroup=false` a 4.9 broker still registers a
/// consumer of an unknown group (ClientManageProcessor.heartBeat only skips
/// the retry topic when the group config is missing) and refuses its pulls
/// with SUBSCRIPTION_GROUP_NOT_EXIST.
#[test]
fn unknown_groups_without_auto_creation_can_heartbeat_but_not_pull() {
    let b = TestBroker::start_with(&[("autoCreateSubscriptionGroup", "false")]);
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Guarded", 1).await;
        for ser in BOTH {
            let r = call(c, Pull::new("Unknown", "Guarded", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::SUBSCRIPTION_GROUP_NOT_EXIST, "{:?}", r.remark);
        }
        let r = call(
            c,
            heartbeat(
                SerializeType::Json,
                LanguageCode::Java,
                consumer_heartbeat("127.0.0.1@guarded", "Unknown", "Guarded", "*"),
            ),
        )
        .await;
        assert_eq!(r.code, resp::SUCCESS, "heartbeat: {:?}", r.remark);
        assert_eq!(
            consumer_ids(c, "Unknown").await,
            Some(vec!["127.0.0.1@guarded".to_owned()])
        );
        assert!(!all_topics(c)
            .await
            .topic_config_table
            .contains_key("%RETRY%Unknown"));
    });
}

// ---------------------------------------------------------------------------
// Offsets

#[test]
fn consumer_offsets_can_be_queried_and_updated() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Offsets", 2).await;
        send(c, "Offsets", 1, b"first", "").await;
        wait_max_offset(c, "Offsets", 1, 1).await;
        for (i, ser) in BOTH.into_iter().enumerate() {
            let group = format!("OffsetGroup{i}");
            // A new group starts at 0 on a fresh queue and on one whose first
            // message is still in memory.
            assert_eq!(
                query_offset(c, ser, &group, "Offsets", 0).await,
                (resp::SUCCESS, Some(0))
            );
            assert_eq!(
                query_offset(c, ser, &group, "Offsets", 1).await,
                (resp::SUCCESS, Some(0))
            );
            let value = (17 + i).to_string();
            let r = call(
                c,
                request(
                    req::UPDATE_CONSUMER_OFFSET,
                    ser,
                    &[
                        ("consumerGroup", &group),
                        ("topic", "Offsets"),
                        ("queueId", "1"),
                        ("commitOffset", &value),
                    ],
                ),
            )
            .await;
            assert_eq!(r.code, resp::SUCCESS, "{:?}", r.remark);
            assert_eq!(
                query_offset(c, ser, &group, "Offsets", 1).await,
                (resp::SUCCESS, Some(17 + i as i64))
            );
            // Other queues and groups are untouched.
            assert_eq!(
                query_offset(c, ser, &group, "Offsets", 0).await,
                (resp::SUCCESS, Some(0))
            );
        }
    });
}

#[test]
fn oneway_offset_update_gets_no_response_and_is_stored() {
    let b = TestBroker::start();
    run(async {
        let mut s = raw(&b.addr).await;
        let mut next_opaque = 1000;
        for (i, ser) in BOTH.into_iter().enumerate() {
            let target = 42 + i as i64;
            let value = target.to_string();
            let mut update = request(
                req::UPDATE_CONSUMER_OFFSET,
                ser,
                &[
                    ("consumerGroup", "OnewayGroup"),
                    ("topic", "OnewayT"),
                    ("queueId", "0"),
                    ("commitOffset", &value),
                ],
            );
            update.opaque = 900 + i as i32;
            update.set_oneway();
            write_cmd(&mut s, &update).await;
            // Every frame that comes back must answer one of these queries.
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let mut query = request(
                    req::QUERY_CONSUMER_OFFSET,
                    ser,
                    &[
                        ("consumerGroup", "OnewayGroup"),
                        ("topic", "OnewayT"),
                        ("queueId", "0"),
                    ],
                );
                next_opaque += 1;
                query.opaque = next_opaque;
                write_cmd(&mut s, &query).await;
                let r = next_frame(&mut s).await;
                assert_eq!(
                    r.opaque, next_opaque,
                    "a one-way request must not be answered (got code {} remark {:?})",
                    r.code, r.remark
                );
                if r.get("offset") == Some(value.as_str()) {
                    break;
                }
                assert!(Instant::now() < deadline, "one-way update never stored");
                async_io::Timer::after(Duration::from_millis(20)).await;
            }
        }
        // Other one-way requests: a send (Java's sendOneway), an unknown code,
        // and a malformed one. None is answered; the send is stored.
        for ser in BOTH {
            let mut oneway_send = send_v2(ser, "OnewayT", 0, b"fire and forget", "");
            oneway_send.opaque = 950;
            oneway_send.set_oneway();
            write_cmd(&mut s, &oneway_send).await;
            let mut unknown = request(9999, ser, &[]);
            unknown.opaque = 951;
            unknown.set_oneway();
            write_cmd(&mut s, &unknown).await;
        }
        s.write_all(&json_frame(
            r#"{"code":30,"opaque":952,"flag":2,"extFields":{"#,
            b"",
        ))
        .await
        .expect("write");
        let c = b.client().await;
        let c: &RemotingClient = &c;
        wait_max_offset(c, "OnewayT", 0, 2).await;
        assert!(
            read_within(&mut s, Duration::from_millis(300))
                .await
                .is_none(),
            "nothing more may arrive"
        );
    });
}

#[test]
fn queue_offsets_and_store_times_are_reported() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Times", 2).await;
        for i in 0..3 {
            send(c, "Times", 0, format!("t{i}").as_bytes(), "").await;
            let_clock_advance(5);
        }
        wait_max_offset(c, "Times", 0, 3).await;
        let r = call_ok(
            c,
            Pull::new("G", "Times", 0, 0).command(SerializeType::Json),
        )
        .await;
        let times: Vec<i64> = records(&r.body).iter().map(|m| m.store_timestamp).collect();
        assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
        let ask = |code: i32, ser: SerializeType, queue: &str, extra: &[(&str, &str)]| {
            let mut fields = vec![("topic", "Times"), ("queueId", queue)];
            fields.extend_from_slice(extra);
            request(code, ser, &fields)
        };
        for ser in BOTH {
            let r = call_ok(c, ask(req::GET_MAX_OFFSET, ser, "0", &[])).await;
            assert_eq!(field_i64(&r, "offset"), 3);
            let r = call_ok(c, ask(req::GET_MIN_OFFSET, ser, "0", &[])).await;
            assert_eq!(field_i64(&r, "offset"), 0);
            for (i, t) in times.iter().enumerate() {
                let t = t.to_string();
                let r = call_ok(
                    c,
                    ask(
                        req::SEARCH_OFFSET_BY_TIMESTAMP,
                        ser,
                        "0",
                        &[("timestamp", &t)],
                    ),
                )
                .await;
                assert_eq!(field_i64(&r, "offset"), i as i64, "offset stored at {t}");
            }
            let r = call_ok(
                c,
                ask(
                    req::SEARCH_OFFSET_BY_TIMESTAMP,
                    ser,
                    "0",
                    &[("timestamp", "0")],
                ),
            )
            .await;
            assert_eq!(field_i64(&r, "offset"), 0);
            let r = call_ok(c, ask(req::GET_EARLIEST_MSG_STORETIME, ser, "0", &[])).await;
            assert_eq!(field_i64(&r, "timestamp"), times[0]);

            // An empty queue.
            let r = call_ok(c, ask(req::GET_MAX_OFFSET, ser, "1", &[])).await;
            assert_eq!(field_i64(&r, "offset"), 0);
            let r = call_ok(c, ask(req::GET_MIN_OFFSET, ser, "1", &[])).await;
            assert_eq!(field_i64(&r, "offset"), 0);
            let r = call_ok(c, ask(req::GET_EARLIEST_MSG_STORETIME, ser, "1", &[])).await;
            assert_eq!(field_i64(&r, "timestamp"), -1);
        }
    });
}

// ---------------------------------------------------------------------------
// Lookups

#[test]
fn messages_can_be_viewed_by_offset_id_and_queried_by_key() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Lookup", 1).await;
        let uniq = "7F0000011234ABCD0000000000000001";
        let s = send(
            c,
            "Lookup",
            0,
            b"find me",
            &props(&[
                ("KEYS", "order-1 order-2"),
                ("TAGS", "TagL"),
                ("UNIQ_KEY", uniq),
            ]),
        )
        .await;
        send(c, "Lookup", 0, b"other", &props(&[("KEYS", "order-3")])).await;
        wait_max_offset(c, "Lookup", 0, 2).await;
        for ser in BOTH {
            let offset = s.phys.to_string();
            let r = call_ok(
                c,
                request(req::VIEW_MESSAGE_BY_ID, ser, &[("offset", &offset)]),
            )
            .await;
            let msgs = records(&r.body);
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].body, b"find me");
            assert_eq!(msgs[0].physical_offset, s.phys);
            assert_eq!(msgs[0].topic, "Lookup");

            let far = (s.phys + 10_000_000).to_string();
            let r = call(
                c,
                request(req::VIEW_MESSAGE_BY_ID, ser, &[("offset", &far)]),
            )
            .await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "{:?}", r.remark);

            let end = (now_ms() + 60_000).to_string();
            let query = |key: &str, unique: bool| {
                let mut cmd = request(
                    req::QUERY_MESSAGE,
                    ser,
                    &[
                        ("topic", "Lookup"),
                        ("key", key),
                        ("maxNum", "32"),
                        ("beginTimestamp", "0"),
                        ("endTimestamp", &end),
                    ],
                );
                if unique {
                    cmd.put("_UNIQUE_KEY_QUERY", "true");
                }
                cmd
            };
            // The index is built as messages are dispatched.
            let r = eventually("the key to be indexed", TIMEOUT, || async move {
                let r = call(c, query("order-2", false)).await;
                (r.code == resp::SUCCESS).then_some(r)
            })
            .await;
            assert_eq!(bodies(&r.body), ["find me"]);
            assert!(field_i64(&r, "indexLastUpdateTimestamp") > 0);
            assert!(field_i64(&r, "indexLastUpdatePhyoffset") > 0);
            let r = call_ok(c, query(uniq, true)).await;
            assert_eq!(bodies(&r.body), ["find me"]);
            let r = call(c, query("no-such-key", false)).await;
            assert_eq!(r.code, resp::QUERY_NOT_FOUND, "{:?}", r.remark);
            assert!(r
                .remark
                .as_deref()
                .unwrap_or("")
                .contains("can not find message"));
        }
    });
}

// ---------------------------------------------------------------------------
// Clients

#[test]
fn heartbeats_register_consumers_and_members_are_notified_of_changes() {
    let b = TestBroker::start();
    run(async {
        let admin = b.client().await;
        let admin: &RemotingClient = &admin;
        create_topic(admin, "HB", 4).await;
        let (a, a_events) = connect_observed(&b.addr).await;
        let r = call_ok(
            &a,
            heartbeat(
                SerializeType::Json,
                LanguageCode::Java,
                consumer_heartbeat("10.0.0.1@a", "HBGroup", "HB", "TagA"),
            ),
        )
        .await;
        assert_eq!(
            r.version, CURRENT_VERSION,
            "clients read it as the broker version"
        );
        let notify = |events: &async_channel::Receiver<RemotingCommand>, who: &'static str| {
            let events = events.clone();
            async move {
                let cmd = recv_within(&events, TIMEOUT)
                    .await
                    .unwrap_or_else(|| panic!("{who}: no NOTIFY_CONSUMER_IDS_CHANGED"));
                assert_eq!(cmd.code, req::NOTIFY_CONSUMER_IDS_CHANGED, "{who}");
                assert_eq!(cmd.get("consumerGroup"), Some("HBGroup"), "{who}");
                assert!(cmd.is_oneway() && !cmd.is_response(), "{who}");
            }
        };
        // The group changed when `a` joined: it hears of it itself.
        notify(&a_events, "a, joining").await;
        assert_eq!(
            consumer_ids(admin, "HBGroup").await,
            Some(vec!["10.0.0.1@a".to_owned()])
        );
        // The retry topic of a clustering group exists once it heartbeats.
        assert!(all_topics(admin)
            .await
            .topic_config_table
            .contains_key("%RETRY%HBGroup"));

        // A second consumer, a C++ client speaking ROCKETMQ.
        let (bc, b_events) = connect_observed(&b.addr).await;
        call_ok(
            &bc,
            heartbeat(
                SerializeType::RocketMq,
                LanguageCode::Cpp,
                consumer_heartbeat("10.0.0.2@b", "HBGroup", "HB", "TagA"),
            ),
        )
        .await;
        notify(&a_events, "a, when b joins").await;
        notify(&b_events, "b, joining").await;
        assert_eq!(
            consumer_ids(admin, "HBGroup").await,
            Some(vec!["10.0.0.1@a".to_owned(), "10.0.0.2@b".to_owned()])
        );

        for ser in BOTH {
            let r = call_ok(
                admin,
                request(
                    req::GET_CONSUMER_LIST_BY_GROUP,
                    ser,
                    &[("consumerGroup", "HBGroup")],
                ),
            )
            .await;
            assert!(!r.body.is_empty());

            let r = call_ok(
                admin,
                request(
                    req::GET_CONSUMER_CONNECTION_LIST,
                    ser,
                    &[("consumerGroup", "HBGroup")],
                ),
            )
            .await;
            let cc = ConsumerConnection::decode(&r.body).expect("ConsumerConnection");
            let mut langs: Vec<(String, String, i32)> = cc
                .connection_set
                .iter()
                .map(|c| (c.client_id.clone(), c.language.clone(), c.version))
                .collect();
            langs.sort();
            assert_eq!(
                langs,
                [
                    ("10.0.0.1@a".to_owned(), "JAVA".to_owned(), CURRENT_VERSION),
                    ("10.0.0.2@b".to_owned(), "CPP".to_owned(), CURRENT_VERSION)
                ]
            );
            assert_eq!(cc.message_model, MessageModel::Clustering);
            assert_eq!(cc.consume_type, ConsumeType::ConsumePassively);
            assert_eq!(
                cc.subscription_table
                    .get("HB")
                    .map(|s| s.sub_string.as_str()),
                Some("TagA")
            );
            let r = call(
                admin,
                request(
                    req::GET_CONSUMER_CONNECTION_LIST,
                    ser,
                    &[("consumerGroup", "NobodyHere")],
                ),
            )
            .await;
            assert_eq!(r.code, resp::CONSUMER_NOT_ONLINE, "{:?}", r.remark);

            let r = call_ok(
                admin,
                request(
                    req::GET_PRODUCER_CONNECTION_LIST,
                    ser,
                    &[("producerGroup", "CLIENT_INNER_PRODUCER")],
                ),
            )
            .await;
            let pc = ProducerConnection::decode(&r.body).expect("ProducerConnection");
            assert_eq!(pc.connection_set.len(), 2);
            let r = call(
                admin,
                request(
                    req::GET_PRODUCER_CONNECTION_LIST,
                    ser,
                    &[("producerGroup", "NoSuchProducers")],
                ),
            )
            .await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "{:?}", r.remark);

            let r = call_ok(
                admin,
                request(req::QUERY_TOPIC_CONSUME_BY_WHO, ser, &[("topic", "HB")]),
            )
            .await;
            let groups = GroupList::decode(&r.body).expect("GroupList").group_list;
            assert!(groups.contains("HBGroup"), "{groups:?}");
        }
        let r = call(
            admin,
            request(
                req::GET_CONSUMER_LIST_BY_GROUP,
                SerializeType::Json,
                &[("consumerGroup", "NobodyHere")],
            ),
        )
        .await;
        assert_eq!(r.code, resp::SYSTEM_ERROR);
        assert!(r
            .remark
            .as_deref()
            .unwrap_or("")
            .contains("no consumer for this group"));

        // `b` leaves: `a` is told, and the list shrinks.
        call_ok(
            &bc,
            request(
                req::UNREGISTER_CLIENT,
                SerializeType::RocketMq,
                &[
                    ("clientID", "10.0.0.2@b"),
                    ("consumerGroup", "HBGroup"),
                    ("producerGroup", "CLIENT_INNER_PRODUCER"),
                ],
            ),
        )
        .await;
        notify(&a_events, "a, when b leaves").await;
        assert_eq!(
            consumer_ids(admin, "HBGroup").await,
            Some(vec!["10.0.0.1@a".to_owned()])
        );
        call_ok(
            &a,
            request(
                req::UNREGISTER_CLIENT,
                SerializeType::Json,
                &[("clientID", "10.0.0.1@a"), ("consumerGroup", "HBGroup")],
            ),
        )
        .await;
        assert_eq!(consumer_ids(admin, "HBGroup").await, None);
    });
}

#[test]
fn a_consumer_whose_connection_closes_leaves_its_group() {
    let b = TestBroker::start();
    run(async {
        let admin = b.client().await;
        let admin: &RemotingClient = &admin;
        create_topic(admin, "Gone", 1).await;
        let (a, a_events) = connect_observed(&b.addr).await;
        call_ok(
            &a,
            heartbeat(
                SerializeType::Json,
                LanguageCode::Java,
                consumer_heartbeat("10.0.0.1@stays", "GoneGroup", "Gone", "*"),
            ),
        )
        .await;
        let mut leaver = raw(&b.addr).await;
        let mut hb = heartbeat(
            SerializeType::RocketMq,
            LanguageCode::Go,
            consumer_heartbeat("10.0.0.3@leaves", "GoneGroup", "Gone", "*"),
        );
        hb.opaque = 5;
        write_cmd(&mut leaver, &hb).await;
        // Its own notification may come first; then the answer.
        loop {
            let frame = next_frame(&mut leaver).await;
            if frame.is_response() {
                assert_eq!((frame.opaque, frame.code), (5, resp::SUCCESS));
                break;
            }
        }
        assert_eq!(
            consumer_ids(admin, "GoneGroup").await.map(|v| v.len()),
            Some(2)
        );
        while a_events.try_recv().is_ok() {}
        drop(leaver);
        eventually("the closed consumer to leave", TIMEOUT, || async move {
            (consumer_ids(admin, "GoneGroup").await == Some(vec!["10.0.0.1@stays".to_owned()]))
                .then_some(())
        })
        .await;
        let cmd = recv_within(&a_events, TIMEOUT)
            .await
            .expect("the remaining member is told");
        assert_eq!(cmd.code, req::NOTIFY_CONSUMER_IDS_CHANGED);
    });
}

#[test]
fn check_client_config_accepts_tags_and_refuses_sql92() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        let body = |ty: &str, expr: &str| {
            format!(
                r#"{{"clientId":"127.0.0.1@cc","group":"CcGroup","subscriptionData":{{"classFilterMode":false,"codeSet":[],"expressionType":"{ty}","subString":"{expr}","subVersion":1700000000000,"tagsSet":[],"topic":"CcTopic"}}}}"#
            )
            .into_bytes()
        };
        for ser in BOTH {
            let mut cmd = request(req::CHECK_CLIENT_CONFIG, ser, &[]);
            cmd.body = body("TAG", "TagA || TagB");
            call_ok(c, cmd).await;
            let mut cmd = request(req::CHECK_CLIENT_CONFIG, ser, &[]);
            cmd.body = body("SQL92", "a > 5");
            let r = call(c, cmd).await;
            assert_eq!(r.code, resp::SYSTEM_ERROR);
            assert!(
                r.remark.as_deref().unwrap_or("").contains("SQL92"),
                "{:?}",
                r.remark
            );
        }
    });
}

#[test]
fn queue_locks_are_exclusive_between_clients() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Ordered", 4).await;
        for ser in BOTH {
            let group = format!("LockGroup{ser:?}");
            let lock = |client: &str, qs: &[i32]| {
                lock_request(req::LOCK_BATCH_MQ, ser, client, &group, "Ordered", qs)
            };
            let unlock = |client: &str, qs: &[i32]| {
                lock_request(req::UNLOCK_BATCH_MQ, ser, client, &group, "Ordered", qs)
            };
            let r = call_ok(c, lock("c1", &[0, 1])).await;
            assert_eq!(locked_queue_ids(&r), [0, 1]);
            let r = call_ok(c, lock("c2", &[1, 2])).await;
            assert_eq!(locked_queue_ids(&r), [2], "queue 1 belongs to c1");
            // Renewal by the holder.
            let r = call_ok(c, lock("c1", &[0, 1])).await;
            assert_eq!(locked_queue_ids(&r), [0, 1]);
            // Unlocking someone else's queue does nothing.
            call_ok(c, unlock("c2", &[0])).await;
            let r = call_ok(c, lock("c2", &[0])).await;
            assert!(locked_queue_ids(&r).is_empty());
            call_ok(c, unlock("c1", &[1])).await;
            let r = call_ok(c, lock("c2", &[1])).await;
            assert_eq!(locked_queue_ids(&r), [1]);
            // UNLOCK_BATCH_MQ may come one-way.
            c.invoke_oneway(unlock("c2", &[1, 2]))
                .await
                .expect("one-way unlock");
            eventually("the one-way unlock", TIMEOUT, || async move {
                let r = call_ok(c, lock("c1", &[1, 2])).await;
                (locked_queue_ids(&r) == [1, 2]).then_some(())
            })
            .await;
        }
    });
}

// ---------------------------------------------------------------------------
// Retries and delays

#[test]
fn sent_back_messages_are_retried_after_their_delay_then_dead_lettered() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Retry", 1).await;
        let uniq = "7F000001AAAABBBB0000000000000042";
        let s = send(
            c,
            "Retry",
            0,
            b"retry me",
            &props(&[("TAGS", "TagR"), ("UNIQ_KEY", uniq)]),
        )
        .await;
        wait_max_offset(c, "Retry", 0, 1).await;
        let send_back = |ser: SerializeType, phys: i64, delay: &str, max: &str| {
            let phys = phys.to_string();
            request(
                req::CONSUMER_SEND_MSG_BACK,
                ser,
                &[
                    ("offset", &phys),
                    ("group", "RG"),
                    ("delayLevel", delay),
                    ("originMsgId", uniq),
                    ("originTopic", "Retry"),
                    ("unitMode", "false"),
                    ("maxReconsumeTimes", max),
                ],
            )
        };
        let started = Instant::now();
        call_ok(c, send_back(SerializeType::Json, s.phys, "1", "16")).await;
        assert_eq!(
            max_offset(c, "%RETRY%RG", 0).await,
            0,
            "level 1 waits a second first"
        );
        wait_max_offset(c, "%RETRY%RG", 0, 1).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "retried after its 1 s delay, not {waited:?}"
        );
        let r = call_ok(
            c,
            Pull::new("RG", "%RETRY%RG", 0, 0).command(SerializeType::Json),
        )
        .await;
        let msgs = records(&r.body);
        assert_eq!(msgs.len(), 1);
        let retried = &msgs[0];
        assert_eq!(retried.body, b"retry me");
        assert_eq!(retried.topic, "%RETRY%RG");
        assert_eq!(retried.reconsume_times, 1);
        assert_eq!(
            properties::get(retried.properties, "RETRY_TOPIC"),
            Some("Retry")
        );
        assert_eq!(
            properties::get(retried.properties, "ORIGIN_MESSAGE_ID"),
            Some(uniq)
        );
        assert_eq!(properties::get(retried.properties, "DELAY"), None);
        assert_eq!(properties::get(retried.properties, "TAGS"), Some("TagR"));

        // Consumed once more and failed again: past its max of 1, it is dead.
        let started = Instant::now();
        call_ok(
            c,
            send_back(SerializeType::RocketMq, retried.physical_offset, "1", "1"),
        )
        .await;
        wait_max_offset(c, "%DLQ%RG", 0, 1).await;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "dead letters are not delayed"
        );
        let r = call_ok(
            c,
            Pull::new("RG", "%DLQ%RG", 0, 0).command(SerializeType::Json),
        )
        .await;
        let dead = records(&r.body);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, b"retry me");
        assert_eq!(dead[0].reconsume_times, 2);
        // delayLevel -1: straight to the DLQ.
        call_ok(c, send_back(SerializeType::Json, s.phys, "-1", "16")).await;
        wait_max_offset(c, "%DLQ%RG", 0, 2).await;
        assert_eq!(max_offset(c, "%RETRY%RG", 0).await, 1);
        let dlq = all_topics(c).await.topic_config_table["%DLQ%RG"].clone();
        assert_eq!((dlq.read_queue_nums, dlq.write_queue_nums), (1, 1));

        // delayLevel 0: the broker picks 3 + reconsumeTimes (level 3, 10 s),
        // so it waits in the schedule topic's queue 2.
        call_ok(c, send_back(SerializeType::Json, s.phys, "0", "16")).await;
        wait_max_offset(c, SCHEDULE_TOPIC, 2, 1).await;

        // An offset where no message is.
        let r = call(
            c,
            send_back(SerializeType::Json, s.phys + 9_999_999, "1", "16"),
        )
        .await;
        assert_eq!(r.code, resp::SYSTEM_ERROR, "{:?}", r.remark);
    });
}

#[test]
fn delayed_messages_arrive_after_their_delay_not_before() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Delayed", 1).await;
        let started = Instant::now();
        for (ser, body) in [
            (SerializeType::Json, "late-1"),
            (SerializeType::RocketMq, "late-2"),
        ] {
            let r = call(
                c,
                send_v2(
                    ser,
                    "Delayed",
                    0,
                    body.as_bytes(),
                    &props(&[("TAGS", "TagD"), ("DELAY", "1")]),
                ),
            )
            .await;
            let s = sent(&r);
            assert_eq!(s.queue_id, 0, "the answer names the real queue");
        }
        wait_max_offset(c, SCHEDULE_TOPIC, 0, 2).await;
        // A level past the last one is capped at the last (18, queue 17).
        send(c, "Delayed", 0, b"much later", &props(&[("DELAY", "99")])).await;
        wait_max_offset(c, SCHEDULE_TOPIC, 17, 1).await;
        assert_eq!(
            max_offset(c, "Delayed", 0).await,
            0,
            "not delivered before its delay"
        );
        wait_max_offset(c, "Delayed", 0, 2).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "delivered after about 1 s, not {waited:?}"
        );
        let r = call_ok(
            c,
            Pull::new("DG", "Delayed", 0, 0).command(SerializeType::Json),
        )
        .await;
        let msgs = records(&r.body);
        assert_eq!(bodies(&r.body), ["late-1", "late-2"]);
        for m in &msgs {
            assert_eq!(m.topic, "Delayed");
            assert_eq!(properties::get(m.properties, "DELAY"), None);
            assert_eq!(properties::get(m.properties, "TAGS"), Some("TagD"));
            assert!(m.store_timestamp >= m.born_timestamp + 900);
        }
        // Tag filtering works on delivered messages (their tag code is the tag's again).
        let mut p = Pull::new("DG", "Delayed", 0, 0);
        p.sys_flag = pull_sys_flag::SUBSCRIPTION;
        p.subscription = Some("TagD");
        let r = call_ok(c, p.command(SerializeType::Json)).await;
        assert_eq!(bodies(&r.body).len(), 2);
        for ser in BOTH {
            let offsets = eventually("delay level 1 progress", TIMEOUT, || async move {
                let r = call_ok(c, request(req::GET_ALL_DELAY_OFFSET, ser, &[])).await;
                let text = std::str::from_utf8(&r.body).expect("utf-8").to_owned();
                let parsed: DelayOffsets =
                    mq_protocol::fastjson::from_str(&text).expect("delay offsets body");
                (parsed.offset_table.get(&1).copied().unwrap_or(0) >= 2).then_some(parsed)
            })
            .await;
            assert_eq!(offsets.offset_table[&1], 2);
        }
    });
}

// ---------------------------------------------------------------------------
// Admin

#[test]
fn topics_are_created_listed_registered_and_deleted() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        for (i, ser) in BOTH.into_iter().enumerate() {
            let topic = format!("Admin{i}");
            call_ok(
                c,
                request(
                    req::UPDATE_AND_CREATE_TOPIC,
                    ser,
                    &[
                        ("topic", &topic),
                        ("defaultTopic", "TBW102"),
                        ("readQueueNums", "3"),
                        ("writeQueueNums", "3"),
                        ("perm", "6"),
                        ("topicFilterType", "SINGLE_TAG"),
                        ("topicSysFlag", "0"),
                        ("order", "false"),
                    ],
                ),
            )
            .await;
        }
        for ser in BOTH {
            let r = call_ok(c, request(req::GET_ALL_TOPIC_CONFIG, ser, &[])).await;
            let all = TopicConfigSerializeWrapper::decode(&r.body).expect("wrapper");
            for topic in ["Admin0", "Admin1"] {
                let t = &all.topic_config_table[topic];
                assert_eq!(
                    (t.read_queue_nums, t.write_queue_nums, t.perm),
                    (3, 3, 6),
                    "{topic}"
                );
            }
            let tbw = &all.topic_config_table["TBW102"];
            assert_eq!((tbw.write_queue_nums, tbw.perm), (8, 7));
            assert!(all.topic_config_table.contains_key(SCHEDULE_TOPIC));
            assert!(all.data_version.counter >= 2);
        }
        // The broker registers the new topic with the NameServer.
        let ns = connect(&b.namesrv.to_string()).await;
        let ns: &RemotingClient = &ns;
        let route = eventually("Admin0's route", TIMEOUT, || async move {
            let r = call(
                ns,
                request(
                    req::GET_ROUTEINFO_BY_TOPIC,
                    SerializeType::Json,
                    &[("topic", "Admin0")],
                ),
            )
            .await;
            (r.code == resp::SUCCESS).then(|| TopicRouteData::decode(&r.body).expect("route"))
        })
        .await;
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, BROKER_NAME);
        assert_eq!(route.queue_datas[0].write_queue_nums, 3);
        assert_eq!(route.broker_datas[0].broker_addrs.get(&0), Some(&b.addr));

        // Deleting.
        call_ok(
            c,
            request(
                req::DELETE_TOPIC_IN_BROKER,
                SerializeType::RocketMq,
                &[("topic", "Admin0")],
            ),
        )
        .await;
        call_ok(
            c,
            request(
                req::DELETE_TOPIC_IN_BROKER,
                SerializeType::Json,
                &[("topic", "Admin1")],
            ),
        )
        .await;
        let left = all_topics(c).await.topic_config_table;
        assert!(!left.contains_key("Admin0") && !left.contains_key("Admin1"));
        let r = call(
            c,
            Pull::new("G", "Admin0", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(r.code, resp::TOPIC_NOT_EXIST);

        // Reserved and malformed names.
        for bad in ["TBW102", "has space", ""] {
            let r = call(
                c,
                request(
                    req::UPDATE_AND_CREATE_TOPIC,
                    SerializeType::Json,
                    &[
                        ("topic", bad),
                        ("defaultTopic", "TBW102"),
                        ("readQueueNums", "1"),
                        ("writeQueueNums", "1"),
                        ("perm", "6"),
                        ("topicFilterType", "SINGLE_TAG"),
                    ],
                ),
            )
            .await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "topic {bad:?}");
        }
    });
}

/// Topic changes arrive on many connections at once (mqadmin, producers
/// auto-creating, consumers' retry topics); each must succeed and be persisted.
#[test]
fn concurrent_topic_changes_all_succeed() {
    let b = TestBroker::start();
    run(async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(b.client().await);
        }
        let mut tasks = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let client = client.clone();
            tasks.push(async move {
                let mut failures = Vec::new();
                for round in 0..4 {
                    let topic = format!("Busy{i}x{round}");
                    let n = "2".to_string();
                    let r = call(
                        &client,
                        request(
                            req::UPDATE_AND_CREATE_TOPIC,
                            SerializeType::Json,
                            &[
                                ("topic", &topic),
                                ("defaultTopic", "TBW102"),
                                ("readQueueNums", &n),
                                ("writeQueueNums", &n),
                                ("perm", "6"),
                                ("topicFilterType", "SINGLE_TAG"),
                            ],
                        ),
                    )
                    .await;
                    if r.code != resp::SUCCESS {
                        failures.push(format!("create {topic}: {:?}", r.remark));
                    }
                    let auto = format!("BusyAuto{i}x{round}");
                    let r = call(&client, send_v2(SerializeType::Json, &auto, 0, b"x", "")).await;
                    if r.code != resp::SUCCESS {
                        failures.push(format!("auto-create {auto}: {:?}", r.remark));
                    }
                }
                failures
            });
        }
        let mut failures = Vec::new();
        for f in concurrently(tasks).await {
            failures.extend(f);
        }
        assert!(
            failures.is_empty(),
            "{} failed: {failures:#?}",
            failures.len()
        );
        let all = all_topics(&clients[0]).await;
        for i in 0..8 {
            for round in 0..4 {
                assert!(all
                    .topic_config_table
                    .contains_key(&format!("Busy{i}x{round}")));
                assert!(all
                    .topic_config_table
                    .contains_key(&format!("BusyAuto{i}x{round}")));
            }
        }
    });
    // Everything was persisted: a reload sees every topic.
    let topics = std::fs::read_to_string(b.store_root().join("config").join("topics.json"))
        .expect("topics.json");
    let persisted = TopicConfigSerializeWrapper::decode(topics.as_bytes()).expect("topics.json");
    assert!(persisted.topic_config_table.contains_key("Busy7x3"));
    assert!(persisted.topic_config_table.contains_key("BusyAuto7x3"));
}

#[test]
fn broker_and_topic_statistics_are_reported() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Stats", 2).await;
        send(c, "Stats", 1, b"s1", "").await;
        send(c, "Stats", 1, b"s2", "").await;
        wait_max_offset(c, "Stats", 1, 2).await;
        call_ok(
            c,
            request(
                req::UPDATE_CONSUMER_OFFSET,
                SerializeType::Json,
                &[
                    ("consumerGroup", "StatsGroup"),
                    ("topic", "Stats"),
                    ("queueId", "1"),
                    ("commitOffset", "1"),
                ],
            ),
        )
        .await;
        let q1 = MessageQueue::new("Stats", BROKER_NAME, 1);
        for ser in BOTH {
            let r = call_ok(c, request(req::GET_BROKER_RUNTIME_INFO, ser, &[])).await;
            let info = KvTable::decode(&r.body).expect("KvTable").table;
            let number = |k: &str| -> i64 {
                info.get(k)
                    .unwrap_or_else(|| panic!("no {k} in {info:?}"))
                    .parse()
                    .expect("a number")
            };
            assert!(number("msgPutTotalTodayNow") >= 2);
            assert!(number("commitLogMaxOffset") > 0);
            assert!(number("bootTimestamp") > 0);
            assert!(info.contains_key("brokerVersionDesc"));

            let r = call_ok(c, request(req::GET_BROKER_CONFIG, ser, &[])).await;
            let text = String::from_utf8(r.body.clone()).expect("utf-8");
            assert!(text.contains("brokerName=broker-a\n"), "{text}");
            assert!(text.contains(&format!("listenPort={}\n", b.port)), "{text}");
            let version = r.get("version").expect("a version header");
            DataVersion::decode(version.as_bytes()).expect("a DataVersion");

            let r = call_ok(
                c,
                request(req::GET_TOPIC_STATS_INFO, ser, &[("topic", "Stats")]),
            )
            .await;
            let stats = TopicStatsTable::decode(&r.body).expect("TopicStatsTable");
            assert_eq!(stats.offset_table.len(), 2);
            let t = stats.offset_table[&q1];
            assert_eq!((t.min_offset, t.max_offset), (0, 2));
            assert!(t.last_update_timestamp > 0);
            let r = call(
                c,
                request(req::GET_TOPIC_STATS_INFO, ser, &[("topic", "Nope")]),
            )
            .await;
            assert_eq!(r.code, resp::TOPIC_NOT_EXIST);

            for fields in [
                &[("consumerGroup", "StatsGroup"), ("topic", "Stats")][..],
                &[("consumerGroup", "StatsGroup")][..],
            ] {
                let r = call_ok(c, request(req::GET_CONSUME_STATS, ser, fields)).await;
                let cs = ConsumeStats::decode(&r.body).expect("ConsumeStats");
                let o = cs.offset_table.get(&q1).expect("queue 1 listed");
                assert_eq!((o.broker_offset, o.consumer_offset), (2, 1), "{fields:?}");
                assert!(o.last_timestamp > 0);
            }

            let r = call_ok(c, request(req::GET_ALL_CONSUMER_OFFSET, ser, &[])).await;
            let all = ConsumerOffsetSerializeWrapper::decode(&r.body).expect("offsets");
            assert_eq!(all.offset_table["Stats@StatsGroup"].get(&1), Some(&1));

            let r = call_ok(c, request(req::GET_ALL_DELAY_OFFSET, ser, &[])).await;
            let text = String::from_utf8(r.body.clone()).expect("utf-8");
            mq_protocol::fastjson::from_str::<DelayOffsets>(&text).expect("delay offsets");

            let r = call_ok(
                c,
                request(req::QUERY_TOPIC_CONSUME_BY_WHO, ser, &[("topic", "Stats")]),
            )
            .await;
            let groups = GroupList::decode(&r.body).expect("GroupList").group_list;
            assert!(groups.contains("StatsGroup"), "{groups:?}");

            let r = call_ok(c, request(req::GET_SYSTEM_TOPIC_LIST_FROM_BROKER, ser, &[])).await;
            let topics = TopicList::decode(&r.body).expect("TopicList").topic_list;
            for t in [
                "TBW102",
                SCHEDULE_TOPIC,
                "DefaultCluster",
                BROKER_NAME,
                "OFFSET_MOVED_EVENT",
                "SELF_TEST_TOPIC",
            ] {
                assert!(topics.contains(t), "{t} in {topics:?}");
            }
        }
    });
}

#[test]
fn subscription_groups_are_created_listed_and_deleted() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        for (i, ser) in BOTH.into_iter().enumerate() {
            let name = format!("SubGroup{i}");
            let mut cmd = request(req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, ser, &[]);
            cmd.body = SubscriptionGroupConfig {
                group_name: name.clone(),
                retry_queue_nums: 2,
                retry_max_times: 3,
                ..SubscriptionGroupConfig::default()
            }
            .encode();
            call_ok(c, cmd).await;
            let r = call_ok(c, request(req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, ser, &[])).await;
            let all = SubscriptionGroupWrapper::decode(&r.body).expect("groups");
            let g = &all.subscription_group_table[&name];
            assert_eq!((g.retry_queue_nums, g.retry_max_times), (2, 3));

            call_ok(
                c,
                request(req::DELETE_SUBSCRIPTIONGROUP, ser, &[("groupName", &name)]),
            )
            .await;
            let r = call_ok(c, request(req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, ser, &[])).await;
            let all = SubscriptionGroupWrapper::decode(&r.body).expect("groups");
            assert!(!all.subscription_group_table.contains_key(&name));

            for body in [&b"{\"retryQueueNums\":1}"[..], b"\xff not json"] {
                let mut cmd = request(req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, ser, &[]);
                cmd.body = body.to_vec();
                let r = call(c, cmd).await;
                assert_eq!(r.code, resp::SYSTEM_ERROR, "body {body:?}");
            }
        }
    });
}

#[test]
fn expired_commit_log_segments_are_deleted_on_request() {
    // 64 KiB segments, kept for 0 hours: every full segment is expired.
    let b = TestBroker::start_with(&[
        ("mappedFileSizeCommitLog", "65536"),
        ("fileReservedTime", "0"),
    ]);
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Expiring", 1).await;
        let body = vec![b'x'; 8 * 1024];
        for _ in 0..20 {
            send(c, "Expiring", 0, &body, "").await;
        }
        wait_max_offset(c, "Expiring", 0, 20).await;
        // Segments go only once flushed and dispatched, which the flush
        // thread does in its own time: ask until the first one is gone.
        let mut asks = 0;
        let min = eventually("an expired segment to be deleted", TIMEOUT, || {
            asks += 1;
            let ser = BOTH[asks % 2];
            async move {
                call_ok(c, request(req::DELETE_EXPIRED_COMMITLOG, ser, &[])).await;
                let r = call_ok(
                    c,
                    request(
                        req::GET_MIN_OFFSET,
                        ser,
                        &[("topic", "Expiring"), ("queueId", "0")],
                    ),
                )
                .await;
                let min = field_i64(&r, "offset");
                (min > 0).then_some(min)
            }
        })
        .await;
        for ser in BOTH {
            call_ok(c, request(req::DELETE_EXPIRED_COMMITLOG, ser, &[])).await;
        }
        // Those rounds may have deleted more segments (the flusher moves on
        // meanwhile): read where the queue starts now.
        let r = call_ok(
            c,
            request(
                req::GET_MIN_OFFSET,
                SerializeType::Json,
                &[("topic", "Expiring"), ("queueId", "0")],
            ),
        )
        .await;
        let min = field_i64(&r, "offset").max(min);
        assert_eq!(max_offset(c, "Expiring", 0).await, 20);
        // A new group can no longer start at 0, and 0 is no longer readable.
        assert_eq!(
            query_offset(c, SerializeType::Json, "LateGroup", "Expiring", 0)
                .await
                .0,
            resp::QUERY_NOT_FOUND
        );
        let r = call(
            c,
            Pull::new("LateGroup", "Expiring", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(r.code, resp::PULL_OFFSET_MOVED, "{:?}", r.remark);
        let r = call_ok(
            c,
            Pull::new("LateGroup", "Expiring", 0, min).command(SerializeType::Json),
        )
        .await;
        assert_eq!(records(&r.body)[0].queue_offset, min);
    });
}

// ---------------------------------------------------------------------------
// Ports, auto-creation, refusals

#[test]
fn vip_port_serves_sends_but_not_pulls() {
    let b = TestBroker::start();
    run(async {
        let vip = connect(&b.vip).await;
        let vip: &RemotingClient = &vip;
        create_topic(vip, "Vip", 1).await;
        for ser in BOTH {
            let r = call(vip, send_v2(ser, "Vip", 0, b"via vip", "")).await;
            sent(&r);
            let r = call(vip, Pull::new("VipGroup", "Vip", 0, 0).command(ser)).await;
            assert_eq!(r.code, resp::REQUEST_CODE_NOT_SUPPORTED, "{:?}", r.remark);
            assert_eq!(
                query_offset(vip, ser, "VipGroup", "Vip", 0).await,
                (resp::SUCCESS, Some(0))
            );
        }
        let main = b.client().await;
        let main: &RemotingClient = &main;
        wait_max_offset(main, "Vip", 0, 2).await;
        let r = call_ok(
            main,
            Pull::new("VipGroup", "Vip", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(bodies(&r.body), ["via vip", "via vip"]);
    });
}

#[test]
fn unknown_topics_are_created_from_tbw102_on_send() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        for ser in BOTH {
            // The first send creates it, the second finds it.
            sent(&call(c, send_v2(ser, "AutoT", 1, b"auto", "")).await);
        }
        let mut cmd = send_v2(SerializeType::Json, "AutoBig", 0, b"auto", "");
        cmd.put("d", "16");
        sent(&call(c, cmd).await);
        let all = all_topics(c).await;
        let t = &all.topic_config_table["AutoT"];
        assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (4, 4, 6));
        let t = &all.topic_config_table["AutoBig"];
        assert_eq!(t.write_queue_nums, 8, "capped at TBW102's queue count");
        wait_max_offset(c, "AutoT", 1, 2).await;
        let ns = connect(&b.namesrv.to_string()).await;
        let ns: &RemotingClient = &ns;
        eventually("AutoT's route", TIMEOUT, || async move {
            let r = call(
                ns,
                request(
                    req::GET_ROUTEINFO_BY_TOPIC,
                    SerializeType::Json,
                    &[("topic", "AutoT")],
                ),
            )
            .await;
            (r.code == resp::SUCCESS).then_some(())
        })
        .await;
    });
}

#[test]
fn sends_to_tbw102_bad_names_or_missing_queues_are_refused() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "TwoQueues", 2).await;
        for ser in BOTH {
            let r = call(c, send_v2(ser, "TBW102", 0, b"x", "")).await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "TBW102 is reserved");
            let r = call(c, send_v2(ser, "has space", 0, b"x", "")).await;
            assert_eq!(r.code, resp::SYSTEM_ERROR, "{:?}", r.remark);
            for queue in [2, 7] {
                let r = call(c, send_v2(ser, "TwoQueues", queue, b"x", "")).await;
                assert_eq!(r.code, resp::SYSTEM_ERROR, "queue {queue}");
                assert!(
                    r.remark.as_deref().unwrap_or("").contains("queueId"),
                    "{:?}",
                    r.remark
                );
            }
            // A negative queue id lets the broker choose.
            let s = sent(&call(c, send_v2(ser, "TwoQueues", -1, b"x", "")).await);
            assert!((0..2).contains(&s.queue_id), "{s:?}");
        }
        // The two accepted ones are stored (dispatch is asynchronous), and
        // nothing refused was.
        let total = eventually("both accepted sends", TIMEOUT, || async move {
            let total = max_offset(c, "TwoQueues", 0).await + max_offset(c, "TwoQueues", 1).await;
            (total >= 2).then_some(total)
        })
        .await;
        assert_eq!(total, 2);
        assert_eq!(max_offset(c, "TBW102", 0).await, 0);
    });
}

#[test]
fn strict_broker_refuses_unknown_topics_and_large_bodies() {
    let b = TestBroker::start_with(&[
        ("autoCreateTopicEnable", "false"),
        ("maxMessageSize", "65536"),
    ]);
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        assert!(!all_topics(c)
            .await
            .topic_config_table
            .contains_key("TBW102"));
        create_topic(c, "Small", 1).await;
        for ser in BOTH {
            let r = call(c, send_v2(ser, "NotCreated", 0, b"x", "")).await;
            assert_eq!(r.code, resp::TOPIC_NOT_EXIST, "{:?}", r.remark);
            let r = call(c, send_v2(ser, "Small", 0, &vec![b'x'; 65_537], "")).await;
            assert_eq!(r.code, resp::MESSAGE_ILLEGAL, "{:?}", r.remark);
            sent(&call(c, send_v2(ser, "Small", 0, &vec![b'x'; 1024], "")).await);
        }
        wait_max_offset(c, "Small", 0, 2).await;
        assert_eq!(max_offset(c, "Small", 0).await, 2);
    });
}

#[test]
fn bodies_over_the_default_max_message_size_are_illegal() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Big", 1).await;
        let r = call(
            c,
            send_v2(
                SerializeType::Json,
                "Big",
                0,
                &vec![0u8; 4 * 1024 * 1024 + 1],
                "",
            ),
        )
        .await;
        assert_eq!(r.code, resp::MESSAGE_ILLEGAL, "{:?}", r.remark);
        assert_eq!(max_offset(c, "Big", 0).await, 0);
    });
}

// ---------------------------------------------------------------------------
// Bad input

#[test]
fn unknown_request_codes_are_not_supported() {
    let b = TestBroker::start();
    run(async {
        for addr in [&b.addr, &b.vip] {
            let c = connect(addr).await;
            let c: &RemotingClient = &c;
            for ser in BOTH {
                for code in [9999, 13, 27] {
                    let r = call(c, request(code, ser, &[])).await;
                    assert_eq!(r.code, resp::REQUEST_CODE_NOT_SUPPORTED, "code {code}");
                    assert_eq!(
                        r.remark.as_deref(),
                        Some(format!(" request type {code} not supported").as_str())
                    );
                }
            }
        }
    });
}

#[test]
fn missing_required_fields_are_named_in_the_error() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Fields", 1).await;
        for ser in BOTH {
            let without = |cmd: RemotingCommand, field: &str| {
                let mut cmd = cmd;
                assert!(cmd.ext_fields.remove(field).is_some(), "{field} was there");
                cmd
            };
            let pull = Pull::new("G", "Fields", 0, 0).command(ser);
            let send = send_v2(ser, "Fields", 0, b"x", "");
            let offsets = request(
                req::UPDATE_CONSUMER_OFFSET,
                ser,
                &[
                    ("consumerGroup", "G"),
                    ("topic", "Fields"),
                    ("queueId", "0"),
                    ("commitOffset", "1"),
                ],
            );
            let query = request(
                req::QUERY_MESSAGE,
                ser,
                &[
                    ("topic", "Fields"),
                    ("key", "k"),
                    ("maxNum", "1"),
                    ("beginTimestamp", "0"),
                    ("endTimestamp", "1"),
                ],
            );
            let cases = [
                (without(pull.clone(), "consumerGroup"), "consumerGroup"),
                (without(pull.clone(), "queueOffset"), "queueOffset"),
                (without(pull, "subVersion"), "subVersion"),
                (without(send.clone(), "b"), "<b>"),
                (without(send, "g"), "<g>"),
                (without(offsets.clone(), "commitOffset"), "commitOffset"),
                (
                    without(
                        request(
                            req::QUERY_CONSUMER_OFFSET,
                            ser,
                            &[("consumerGroup", "G"), ("topic", "T"), ("queueId", "0")],
                        ),
                        "queueId",
                    ),
                    "queueId",
                ),
                (without(query, "key"), "key"),
                (
                    request(req::GET_MAX_OFFSET, ser, &[("queueId", "0")]),
                    "topic",
                ),
                (
                    request(req::GET_MIN_OFFSET, ser, &[("topic", "T")]),
                    "queueId",
                ),
                (
                    request(
                        req::SEARCH_OFFSET_BY_TIMESTAMP,
                        ser,
                        &[("topic", "T"), ("queueId", "0")],
                    ),
                    "timestamp",
                ),
                (
                    request(req::GET_EARLIEST_MSG_STORETIME, ser, &[("topic", "T")]),
                    "queueId",
                ),
                (request(req::VIEW_MESSAGE_BY_ID, ser, &[]), "offset"),
                (
                    request(
                        req::CONSUMER_SEND_MSG_BACK,
                        ser,
                        &[("offset", "0"), ("delayLevel", "1")],
                    ),
                    "group",
                ),
                (
                    request(
                        req::UPDATE_AND_CREATE_TOPIC,
                        ser,
                        &[
                            ("topic", "X"),
                            ("defaultTopic", "TBW102"),
                            ("readQueueNums", "1"),
                            ("writeQueueNums", "1"),
                            ("topicFilterType", "SINGLE_TAG"),
                        ],
                    ),
                    "perm",
                ),
                (request(req::DELETE_TOPIC_IN_BROKER, ser, &[]), "topic"),
                (request(req::GET_TOPIC_STATS_INFO, ser, &[]), "topic"),
                (
                    request(req::GET_CONSUMER_LIST_BY_GROUP, ser, &[]),
                    "consumerGroup",
                ),
                (
                    request(req::GET_CONSUMER_CONNECTION_LIST, ser, &[]),
                    "consumerGroup",
                ),
                (
                    request(req::GET_PRODUCER_CONNECTION_LIST, ser, &[]),
                    "producerGroup",
                ),
                (request(req::GET_CONSUME_STATS, ser, &[]), "consumerGroup"),
                (request(req::QUERY_TOPIC_CONSUME_BY_WHO, ser, &[]), "topic"),
                (
                    request(req::DELETE_SUBSCRIPTIONGROUP, ser, &[]),
                    "groupName",
                ),
                (
                    request(req::UNREGISTER_CLIENT, ser, &[("consumerGroup", "G")]),
                    "clientID",
                ),
                // Present but not a number.
                (
                    request(
                        req::GET_MAX_OFFSET,
                        ser,
                        &[("topic", "Fields"), ("queueId", "zero")],
                    ),
                    "queueId",
                ),
            ];
            for (cmd, field) in cases {
                let code = cmd.code;
                let r = call(c, cmd).await;
                assert_eq!(r.code, resp::SYSTEM_ERROR, "request {code} without {field}");
                let remark = r.remark.unwrap_or_default();
                assert!(
                    remark.contains(field),
                    "request {code}: the remark must name {field}: {remark:?}"
                );
            }
        }
    });
}

#[test]
fn malformed_headers_are_answered_and_the_connection_survives() {
    let b = TestBroker::start();
    run(async {
        let mut s = raw(&b.addr).await;
        // JSON cut short: the opaque is still readable.
        s.write_all(&json_frame(
            r#"{"code":30,"opaque":77,"flag":0,"extFields":{"topic":"#,
            b"",
        ))
        .await
        .expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (77, resp::SYSTEM_ERROR));
        assert_eq!(r.serialize_type, SerializeType::Json);
        still_serves(&mut s, 78).await;

        // JSON of the wrong shape.
        for (opaque, header) in [
            (91, r#"{"code":30,"opaque":91,"extFields":[1,2]}"#),
            (92, r#"{"code":"thirty","opaque":92}"#),
        ] {
            s.write_all(&json_frame(header, b"")).await.expect("write");
            let r = next_frame(&mut s).await;
            assert_eq!((r.opaque, r.code), (opaque, resp::SYSTEM_ERROR), "{header}");
            still_serves(&mut s, opaque + 100).await;
        }

        // A binary header whose remark length runs past the header.
        let mut header = Vec::new();
        header.extend_from_slice(&30i16.to_be_bytes());
        header.push(0);
        header.extend_from_slice(&407i16.to_be_bytes());
        header.extend_from_slice(&88i32.to_be_bytes());
        header.extend_from_slice(&0i32.to_be_bytes());
        header.extend_from_slice(&1000i32.to_be_bytes());
        header.extend_from_slice(b"abc");
        s.write_all(&typed_frame(1, &header, b""))
            .await
            .expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (88, resp::SYSTEM_ERROR));
        assert_eq!(r.serialize_type, SerializeType::RocketMq);
        still_serves(&mut s, 89).await;

        // ... and one whose extFields length does.
        let mut header = Vec::new();
        header.extend_from_slice(&30i16.to_be_bytes());
        header.push(0);
        header.extend_from_slice(&407i16.to_be_bytes());
        header.extend_from_slice(&90i32.to_be_bytes());
        header.extend_from_slice(&0i32.to_be_bytes());
        header.extend_from_slice(&0i32.to_be_bytes());
        header.extend_from_slice(&500i32.to_be_bytes());
        header.extend_from_slice(&[0, 5, b't']);
        s.write_all(&typed_frame(1, &header, b""))
            .await
            .expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (90, resp::SYSTEM_ERROR));
        still_serves(&mut s, 190).await;

        // An unknown serialize type, and a header length past the frame: no
        // opaque to answer, but the stream is still in step.
        s.write_all(&typed_frame(5, b"whatever", b""))
            .await
            .expect("write");
        still_serves(&mut s, 300).await;
        let mut frame = json_frame(r#"{"code":30}"#, b"");
        frame[5..8].copy_from_slice(&[0, 0x10, 0]);
        s.write_all(&frame).await.expect("write");
        still_serves(&mut s, 301).await;
    });
}

#[test]
fn frames_over_16_mib_are_answered_skipped_and_the_connection_survives() {
    let b = TestBroker::start();
    run(async {
        let mut s = raw(&b.addr).await;
        let zeros = vec![0u8; 64 * 1024];
        for (i, ser) in BOTH.into_iter().enumerate() {
            let opaque = 55 + i as i32;
            let mut cmd = request(
                req::GET_MAX_OFFSET,
                ser,
                &[("topic", "TBW102"), ("queueId", "0")],
            );
            cmd.opaque = opaque;
            let small = cmd.encode().expect("encode");
            // Frame of 17 MiB, length field included.
            let total: usize = 17 * 1024 * 1024;
            let mut head = ((total - 4) as u32).to_be_bytes().to_vec();
            head.extend_from_slice(&small[4..]);
            s.write_all(&head).await.expect("write the header");
            let mut left = total - head.len();
            while left > 0 {
                let n = left.min(zeros.len());
                s.write_all(&zeros[..n]).await.expect("write zeros");
                left -= n;
            }
            let r = next_frame(&mut s).await;
            assert_eq!((r.opaque, r.code), (opaque, resp::SYSTEM_ERROR));
            assert_eq!(r.serialize_type, ser);
            assert!(
                r.remark.as_deref().unwrap_or("").contains("exceeds"),
                "{:?}",
                r.remark
            );
            still_serves(&mut s, opaque + 100).await;
        }
        // Exactly at the limit (16 MiB with the length field) is accepted.
        let mut cmd = request(
            req::GET_MAX_OFFSET,
            SerializeType::Json,
            &[("topic", "TBW102"), ("queueId", "0")],
        );
        cmd.opaque = 70;
        let small = cmd.encode().expect("encode");
        let total: usize = 16 * 1024 * 1024;
        let mut frame = ((total - 4) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&small[4..]);
        frame.resize(total, 0);
        s.write_all(&frame).await.expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (70, resp::SUCCESS), "{:?}", r.remark);
    });
}

#[test]
fn a_negative_frame_length_closes_only_that_connection() {
    let b = TestBroker::start();
    run(async {
        let mut other = raw(&b.addr).await;
        still_serves(&mut other, 1).await;
        for length in [-1i32, i32::MIN, 2] {
            let mut bad = raw(&b.addr).await;
            bad.write_all(&length.to_be_bytes()).await.expect("write");
            bad.write_all(&[0u8; 16]).await.ok();
            assert!(
                closed_within(&mut bad, TIMEOUT).await,
                "length {length}: the connection must be closed"
            );
            still_serves(&mut other, 2).await;
        }
        let fresh = b.client().await;
        let fresh: &RemotingClient = &fresh;
        call_ok(
            fresh,
            request(req::GET_BROKER_RUNTIME_INFO, SerializeType::Json, &[]),
        )
        .await;
    });
}

#[test]
fn peers_leaving_mid_frame_or_mid_pull_do_not_hurt_the_broker() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Leaving", 1).await;
        // Gone inside the length field, the header, and the body.
        let mut cmd = send_v2(SerializeType::Json, "Leaving", 0, &[7u8; 1000], "");
        cmd.opaque = 1;
        let frame = cmd.encode().expect("encode");
        for cut in [2, 6, 40, frame.len() - 10] {
            let mut s = raw(&b.addr).await;
            s.write_all(&frame[..cut]).await.expect("write");
            drop(s);
        }
        // A parked pull whose consumer goes away.
        let mut s = raw(&b.addr).await;
        let mut p = Pull::new("LeavingGroup", "Leaving", 0, 0);
        p.sys_flag = pull_sys_flag::SUSPEND;
        p.suspend_ms = 10_000;
        write_cmd(&mut s, &p.command(SerializeType::Json)).await;
        eventually("the pull to be parked", TIMEOUT, || async move {
            let info = runtime_info(c).await;
            (info.get("pullHoldingRequests").map(String::as_str) == Some("1")).then_some(())
        })
        .await;
        drop(s);
        send(c, "Leaving", 0, b"after", "").await;
        wait_max_offset(c, "Leaving", 0, 1).await;
        let r = call_ok(
            c,
            Pull::new("G", "Leaving", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(bodies(&r.body), ["after"], "the cut frames stored nothing");
    });
}

#[test]
fn garbage_bodies_are_refused_with_an_error() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Garbage", 1).await;
        for ser in BOTH {
            for body in [
                &b"\x00\xffnot json{"[..],
                br#"{"clientID":5,"consumerDataSet":"x"}"#,
            ] {
                let r = call(c, heartbeat(ser, LanguageCode::Java, body.to_vec())).await;
                assert_eq!(r.code, resp::SYSTEM_ERROR, "heartbeat {body:?}");
            }
            for code in [
                req::LOCK_BATCH_MQ,
                req::UNLOCK_BATCH_MQ,
                req::CHECK_CLIENT_CONFIG,
            ] {
                let mut cmd = request(code, ser, &[]);
                cmd.body = b"[[[".to_vec();
                let r = call(c, cmd).await;
                assert_eq!(r.code, resp::SYSTEM_ERROR, "request {code}");
            }

            // Batch bodies whose lengths lie.
            let mut good = Vec::new();
            for body in [&b"one"[..], b"two"] {
                encode_batch_item(
                    &BatchItem {
                        flag: 0,
                        body,
                        properties: "TAGS\u{1}T",
                    },
                    &mut good,
                )
                .expect("encode");
            }
            let item_len = good.len() / 2;
            let patched = |at: usize, value: i32| {
                let mut b = good.clone();
                b[at..at + 4].copy_from_slice(&value.to_be_bytes());
                b
            };
            let mut props_past_end = good.clone();
            let props_at = item_len - 2 - "TAGS\u{1}T".len();
            props_past_end[props_at..props_at + 2].copy_from_slice(&500u16.to_be_bytes());
            let mut bad_utf8 = good.clone();
            bad_utf8[item_len - 1] = 0xFF;
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("total size past the body", patched(0, 10_000)),
                ("total size too small", patched(0, 8)),
                ("negative total size", patched(0, -1)),
                ("body length past the item", patched(16, 5_000)),
                ("negative body length", patched(16, -3)),
                ("properties length past the item", props_past_end),
                ("properties not UTF-8", bad_utf8),
                ("trailing bytes", {
                    let mut b = good.clone();
                    b.extend_from_slice(&[0, 0, 1]);
                    b
                }),
                ("empty", Vec::new()),
            ];
            for (what, body) in cases {
                let mut cmd = send_v2(ser, "Garbage", 0, &body, "");
                cmd.code = req::SEND_BATCH_MESSAGE;
                cmd.put("m", "true");
                let r = call(c, cmd).await;
                assert_eq!(
                    r.code,
                    resp::MESSAGE_ILLEGAL,
                    "batch: {what}: {:?}",
                    r.remark
                );
            }
            // The connection is still fine.
            call_ok(c, request(req::GET_BROKER_RUNTIME_INFO, ser, &[])).await;
        }
        assert_eq!(
            max_offset(c, "Garbage", 0).await,
            0,
            "no lying batch was stored"
        );
    });
}

// ---------------------------------------------------------------------------
// What other clients send (protocol reference §10)

#[test]
fn lenient_json_headers_from_other_clients_are_accepted() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Lenient", 1).await;
        let mut s = raw(&b.addr).await;
        let sends = [
            // Numbers and booleans as JSON values, CPP, an old version, no
            // serializeTypeCurrentRPC or remark, empty ACL fields, a newline.
            (
                r#"{"code":310,"extFields":{"a":"PG","b":"Lenient","c":"TBW102","d":4,"e":0,"f":0,"g":1700000000000,"h":0,"i":"TAGS\u0001TagA\u0002WAIT\u0001true","j":0,"k":false,"m":false,"AccessKey":"","Signature":"","OnsChannel":""},"flag":0,"language":"CPP","opaque":0,"version":79}
"#,
                0,
            ),
            // SEND_MESSAGE (10) with long names, numbers, language as an
            // ordinal (9 = GO), version 0, an empty remark.
            (
                r#"{"code":10,"extFields":{"producerGroup":"PG","topic":"Lenient","defaultTopic":"TBW102","defaultTopicQueueNums":4,"queueId":0,"sysFlag":0,"bornTimestamp":1700000000000,"flag":0,"properties":"TAGS\u0001TagB","reconsumeTimes":0,"unitMode":"0","batch":false},"flag":0,"language":9,"opaque":1,"remark":"","version":0}"#,
                1,
            ),
            // Language "GO", booleans as strings "1"/"0".
            (
                r#"{"code":310,"extFields":{"a":"PG","b":"Lenient","c":"TBW102","d":"4","e":"0","f":"0","g":"1700000000000","h":"0","k":"0","m":"0"},"flag":0,"language":"GO","opaque":2,"serializeTypeCurrentRPC":"JSON","version":213}"#,
                2,
            ),
        ];
        for (header, opaque) in sends {
            s.write_all(&json_frame(header, format!("lenient-{opaque}").as_bytes()))
                .await
                .expect("write");
            let r = next_frame(&mut s).await;
            assert_eq!(r.opaque, opaque);
            assert_eq!(r.code, resp::SUCCESS, "{header}: {:?}", r.remark);
            assert!(r.get("msgId").is_some());
        }
        // The ConsumeQueue is written behind the acknowledgement.
        wait_max_offset(c, "Lenient", 0, 3).await;
        // A pull and offset requests with numeric fields.
        let pull = r#"{"code":11,"extFields":{"consumerGroup":"LG","topic":"Lenient","queueId":0,"queueOffset":0,"maxMsgNums":32,"sysFlag":4,"commitOffset":0,"suspendTimeoutMillis":0,"subscription":"TagA || TagB","subVersion":0},"flag":0,"language":"PYTHON","opaque":10,"version":0}"#;
        s.write_all(&json_frame(pull, b"")).await.expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (10, resp::SUCCESS), "{:?}", r.remark);
        assert_eq!(bodies(&r.body), ["lenient-0", "lenient-1"]);
        let update = r#"{"code":15,"extFields":{"consumerGroup":"LG","topic":"Lenient","queueId":0,"commitOffset":2,"bname":"broker-a"},"flag":0,"opaque":11}"#;
        s.write_all(&json_frame(update, b"")).await.expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (11, resp::SUCCESS), "{:?}", r.remark);
        let query = r#"{"code":14,"extFields":{"consumerGroup":"LG","topic":"Lenient","queueId":0},"opaque":12}"#;
        s.write_all(&json_frame(query, b"")).await.expect("write");
        let r = next_frame(&mut s).await;
        assert_eq!((r.opaque, r.code), (12, resp::SUCCESS));
        assert_eq!(r.get("offset"), Some("2"));
    });
}

#[test]
fn odd_heartbeats_still_register_and_filter_by_their_tags() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Odd", 1).await;
        for (body, tag) in [("a1", "TagA"), ("b1", "TagB"), ("a2", "TagA")] {
            send(c, "Odd", 0, body.as_bytes(), &props(&[("TAGS", tag)])).await;
        }
        wait_max_offset(c, "Odd", 0, 3).await;
        let bodies_for = [
            // Enums as ordinals, subVersion as a string, codeSet all zeros,
            // unitMode and classFilterMode absent.
            (
                "OrdinalGroup",
                r#"{"clientID":"odd@1","consumerDataSet":[{"consumeFromWhere":0,"consumeType":1,"groupName":"OrdinalGroup","messageModel":1,"subscriptionDataSet":[{"codeSet":[0],"expressionType":"TAG","subString":"TagA","subVersion":"1700000000000","tagsSet":["TagA"],"topic":"Odd"}]}],"producerDataSet":[]}"#,
            ),
            // Enums as names, a wrong codeSet, no expressionType.
            (
                "NamedGroup",
                r#"{"clientID":"odd@2","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"NamedGroup","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[12345],"subString":"TagB","subVersion":1700000000000,"tagsSet":["TagB"],"topic":"Odd"}],"unitMode":false}]}"#,
            ),
        ];
        for (i, (group, body)) in bodies_for.iter().enumerate() {
            let ser = BOTH[i % 2];
            call_ok(
                c,
                heartbeat(ser, LanguageCode::Go, body.as_bytes().to_vec()),
            )
            .await;
            let r = call_ok(
                c,
                request(
                    req::GET_CONSUMER_CONNECTION_LIST,
                    ser,
                    &[("consumerGroup", group)],
                ),
            )
            .await;
            let cc = ConsumerConnection::decode(&r.body).expect("ConsumerConnection");
            assert_eq!(cc.message_model, MessageModel::Clustering, "{group}");
            assert_eq!(cc.consume_type, ConsumeType::ConsumePassively, "{group}");
            assert_eq!(cc.connection_set[0].language, "GO");
        }
        let r = call_ok(
            c,
            Pull::new("OrdinalGroup", "Odd", 0, 0).command(SerializeType::Json),
        )
        .await;
        assert_eq!(bodies(&r.body), ["a1", "a2"], "tags, not codeSet, decide");
        let r = call_ok(
            c,
            Pull::new("NamedGroup", "Odd", 0, 0).command(SerializeType::RocketMq),
        )
        .await;
        assert_eq!(bodies(&r.body), ["b1"]);
    });
}

#[test]
fn properties_with_a_trailing_separator_and_no_uniq_key_are_stored() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "Props", 1).await;
        let s = send(
            c,
            "Props",
            0,
            b"plain",
            "TAGS\u{1}TagP\u{2}KEYS\u{1}pk-1\u{2}",
        )
        .await;
        wait_max_offset(c, "Props", 0, 1).await;
        let mut p = Pull::new("PG", "Props", 0, 0);
        p.sys_flag = pull_sys_flag::SUBSCRIPTION;
        p.subscription = Some("TagP");
        let r = call_ok(c, p.command(SerializeType::Json)).await;
        let msgs = records(&r.body);
        assert_eq!(msgs.len(), 1);
        let pairs: Vec<(&str, &str)> = properties::iter(msgs[0].properties).collect();
        assert_eq!(
            pairs,
            [
                ("TAGS", "TagP"),
                ("KEYS", "pk-1"),
                ("CLUSTER", "DefaultCluster")
            ],
            "stored as {:?}",
            msgs[0].properties
        );
        assert!(!msgs[0].properties.contains("\u{2}\u{2}"));
        // Without UNIQ_KEY the offset id is the message's id.
        let offset = s.phys.to_string();
        let r = call_ok(
            c,
            request(
                req::VIEW_MESSAGE_BY_ID,
                SerializeType::Json,
                &[("offset", &offset)],
            ),
        )
        .await;
        assert_eq!(bodies(&r.body), ["plain"]);
        let end = (now_ms() + 60_000).to_string();
        let end = end.as_str();
        eventually("pk-1 to be indexed", TIMEOUT, || async move {
            let r = call(
                c,
                request(
                    req::QUERY_MESSAGE,
                    SerializeType::Json,
                    &[
                        ("topic", "Props"),
                        ("key", "pk-1"),
                        ("maxNum", "32"),
                        ("beginTimestamp", "0"),
                        ("endTimestamp", end),
                    ],
                ),
            )
            .await;
            (r.code == resp::SUCCESS).then_some(())
        })
        .await;
    });
}

// ---------------------------------------------------------------------------
// The mqd process: clean shutdown and restart

#[test]
fn offsets_and_topics_survive_a_clean_restart() {
    let dir = TempDir::new("restart");
    let data = dir.path().join("data");
    let log = dir.path().join("mqd.log");
    let ns_port = free_port();
    let port = free_broker_port();
    let addr = format!("127.0.0.1:{port}");
    let abort = data.join("store").join("abort");

    let command = MqdCommand::standalone(&data, ns_port, port, &log).args(flags(&SMALL_STORE));
    let mut mqd = command.clone().start();
    assert!(abort.exists(), "a running store has its abort marker");
    async_io::block_on(async {
        let c = connect(&addr).await;
        let c: &RemotingClient = &c;
        create_topic(c, "Durable", 2).await;
        for i in 0..3 {
            send(c, "Durable", 1, format!("d{i}").as_bytes(), "").await;
        }
        sent(
            &call(
                c,
                send_v2(SerializeType::Json, "AutoDurable", 0, b"auto", ""),
            )
            .await,
        );
        wait_max_offset(c, "Durable", 1, 3).await;
        call_ok(
            c,
            request(
                req::UPDATE_CONSUMER_OFFSET,
                SerializeType::Json,
                &[
                    ("consumerGroup", "DurableGroup"),
                    ("topic", "Durable"),
                    ("queueId", "1"),
                    ("commitOffset", "2"),
                ],
            ),
        )
        .await;
        // Committed one-way, kept only in memory until shutdown.
        c.invoke_oneway(request(
            req::UPDATE_CONSUMER_OFFSET,
            SerializeType::Json,
            &[
                ("consumerGroup", "DurableGroup"),
                ("topic", "Durable"),
                ("queueId", "0"),
                ("commitOffset", "7"),
            ],
        ))
        .await
        .expect("one-way update");
        let mut group = request(
            req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
            SerializeType::Json,
            &[],
        );
        group.body = SubscriptionGroupConfig {
            group_name: "DurableSubGroup".into(),
            retry_queue_nums: 3,
            ..SubscriptionGroupConfig::default()
        }
        .encode();
        call_ok(c, group).await;
        eventually("the one-way commit", TIMEOUT, || async move {
            (query_offset(c, SerializeType::Json, "DurableGroup", "Durable", 0)
                .await
                .1
                == Some(7))
            .then_some(())
        })
        .await;
    });
    // A pull parked at shutdown is answered, not dropped.
    let parked = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            async_io::block_on(async {
                let c = connect(&addr).await;
                let c: &RemotingClient = &c;
                let mut p = Pull::new("DurableGroup", "Durable", 0, 0);
                p.sys_flag = pull_sys_flag::SUSPEND;
                p.suspend_ms = 15_000;
                c.invoke(p.command(SerializeType::Json), Duration::from_secs(15))
                    .await
                    .map(|r| r.code)
            })
        })
    };
    async_io::block_on(async {
        let c = connect(&addr).await;
        let c: &RemotingClient = &c;
        eventually("the pull to be parked", TIMEOUT, || async move {
            let info = runtime_info(c).await;
            (info.get("pullHoldingRequests").map(String::as_str) == Some("1")).then_some(())
        })
        .await;
    });
    let stopped_at = Instant::now();
    let status = mqd.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "clean exit; log:\n{}",
        mqd.log_text()
    );
    assert!(!abort.exists(), "a clean shutdown removes the abort marker");
    let answer = parked.join().expect("the pulling thread");
    assert_eq!(
        answer.ok(),
        Some(resp::PULL_NOT_FOUND),
        "the parked pull is answered at shutdown"
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(10));

    let mut again = command.start();
    async_io::block_on(async {
        let c = connect(&addr).await;
        let c: &RemotingClient = &c;
        assert_eq!(
            query_offset(c, SerializeType::Json, "DurableGroup", "Durable", 1).await,
            (resp::SUCCESS, Some(2))
        );
        assert_eq!(
            query_offset(c, SerializeType::Json, "DurableGroup", "Durable", 0).await,
            (resp::SUCCESS, Some(7))
        );
        let r = call_ok(
            c,
            request(
                req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
                SerializeType::Json,
                &[],
            ),
        )
        .await;
        let groups = SubscriptionGroupWrapper::decode(&r.body).expect("groups");
        assert_eq!(
            groups.subscription_group_table["DurableSubGroup"].retry_queue_nums,
            3
        );
        let all = all_topics(c).await;
        assert_eq!(all.topic_config_table["Durable"].write_queue_nums, 2);
        assert!(all.topic_config_table.contains_key("AutoDurable"));
        assert_eq!(max_offset(c, "Durable", 1).await, 3);
        let r = call_ok(
            c,
            Pull::new("DurableGroup", "Durable", 1, 2).command(SerializeType::RocketMq),
        )
        .await;
        assert_eq!(bodies(&r.body), ["d2"]);
    });
    let status = again.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", again.log_text());
}

#[test]
fn reset_offset_by_time_and_query_consume_queue() {
    let b = TestBroker::start();
    run(async {
        let c = b.client().await;
        let c: &RemotingClient = &c;
        create_topic(c, "ResetTopic", 1).await;
        let mut times = Vec::new();
        for i in 0..5 {
            let s = send(
                c,
                "ResetTopic",
                0,
                format!("m{i}").as_bytes(),
                &props(&[("TAGS", "T")]),
            )
            .await;
            assert_eq!(s.queue_offset, i);
            times.push(now_ms());
            std::thread::sleep(Duration::from_millis(5));
        }
        wait_max_offset(c, "ResetTopic", 0, 5).await;
        for ser in BOTH {
            // The group consumed everything; reset it to just after message 1.
            let r = call_ok(
                c,
                request(
                    req::UPDATE_CONSUMER_OFFSET,
                    ser,
                    &[
                        ("consumerGroup", "RG"),
                        ("topic", "ResetTopic"),
                        ("queueId", "0"),
                        ("commitOffset", "5"),
                    ],
                ),
            )
            .await;
            assert_eq!(r.code, resp::SUCCESS);
            let ts = (times[1] + 1).to_string();
            let r = call_ok(
                c,
                request(
                    req::INVOKE_BROKER_TO_RESET_OFFSET,
                    ser,
                    &[
                        ("topic", "ResetTopic"),
                        ("group", "RG"),
                        ("timestamp", &ts),
                        ("isForce", "true"),
                    ],
                ),
            )
            .await;
            let body = ResetOffsetBody::decode(&r.body).unwrap();
            let (_, offset) = body.offset_table.iter().next().unwrap();
            assert_eq!(*offset, 2, "first message stored at or after the time");
            assert_eq!(
                query_offset(c, ser, "RG", "ResetTopic", 0).await,
                (resp::SUCCESS, Some(2))
            );
            // The consume queue, entry by entry.
            let r = call_ok(
                c,
                request(
                    req::QUERY_CONSUME_QUEUE,
                    ser,
                    &[
                        ("topic", "ResetTopic"),
                        ("queueId", "0"),
                        ("index", "1"),
                        ("count", "3"),
                    ],
                ),
            )
            .await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["maxQueueIndex"], 5);
            assert_eq!(v["queueData"].as_array().unwrap().len(), 3);
        }
        // An unknown topic is refused.
        let r = call(
            c,
            request(
                req::INVOKE_BROKER_TO_RESET_OFFSET,
                SerializeType::Json,
                &[
                    ("topic", "NoSuchTopic"),
                    ("group", "RG"),
                    ("timestamp", "0"),
                    ("isForce", "true"),
                ],
            ),
        )
        .await;
        assert_eq!(r.code, resp::TOPIC_NOT_EXIST);
    });
}
