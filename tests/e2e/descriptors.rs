//! `mqd standalone` under a low descriptor limit, flooded with more
//! connections than it has descriptors (issue 8): each listener holds its
//! share and closes the rest at once, the store and the JSON files keep
//! working, the other listeners keep serving, the log gets one warning per
//! interval rather than one per refused connection, and a client is served
//! again once the flood leaves.

use std::time::Instant;

use futures_lite::io::AsyncWriteExt;
use mq::connection::RemotingClient;
use mq_protocol::body::ConsumerOffsetSerializeWrapper;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::SerializeType;

use crate::support::*;

/// The soft and hard RLIMIT_NOFILE mqd runs under.
const NOFILE: u64 = 256;

/// Connections opened at once to the broker's main port: more than mqd has
/// descriptors in all.
const FLOOD: usize = 300;

/// The connection limit mqd logged for the listener at `addr`.
fn listener_limit(log: &str, addr: &str) -> usize {
    let prefix = format!("{addr}: accepting up to ");
    log.lines()
        .find_map(|line| {
            let rest = &line[line.find(&prefix)? + prefix.len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no connection limit logged for {addr}; log:\n{log}"))
}

/// GET_MAX_OFFSET of `topic`'s queue 0, a cheap request every broker answers.
fn max_offset_request(topic: &str) -> mq_protocol::frame::RemotingCommand {
    request(
        req::GET_MAX_OFFSET,
        SerializeType::Json,
        &[("topic", topic), ("queueId", "0")],
    )
}

#[test]
fn a_flood_of_connections_leaves_the_store_its_descriptors() {
    let dir = TempDir::new("descriptors");
    let data = dir.path().join("data");
    let store = data.join("store");
    let log = dir.path().join("mqd.log");
    let ns_port = free_port();
    let port = free_broker_port();
    let addr = format!("127.0.0.1:{port}");
    let mut mqd = MqdCommand::standalone(&data, ns_port, port, &log)
        .args(flags(&SMALL_STORE))
        // Offsets are persisted every 100 ms, so the test sees a write at the limit soon.
        .args(["--flushConsumerOffsetInterval", "100"])
        .nofile(NOFILE)
        .start();
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", mqd.pid())).expect("read mqd's limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect();
    assert_eq!(
        open_files,
        [NOFILE.to_string(), NOFILE.to_string()],
        "mqd must run with soft and hard limit {NOFILE}"
    );
    let max = listener_limit(&mqd.log_text(), &addr);
    assert!(
        max * 3 < NOFILE as usize,
        "three listeners must leave descriptors over: {max} each"
    );

    let flood_began = Instant::now();
    async_io::block_on(async {
        let client = connect(&addr).await;
        let c: &RemotingClient = &client;

        let mut flood = Vec::with_capacity(FLOOD);
        for _ in 0..FLOOD {
            flood.push(raw(&addr).await);
        }
        // Every connection asks once: an admitted one is answered, a refused
        // one was closed by the broker.
        let asking: Vec<_> = flood
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                async move {
                    let mut probe = max_offset_request("TBW102");
                    probe.opaque = i as i32;
                    let frame = probe.encode().expect("encode");
                    // Writing to a connection the broker closed may fail already.
                    let _ = stream.write_all(&frame).await;
                    let answer = read_within(&mut stream, TIMEOUT)
                        .await
                        .expect("an answer or a close within the timeout");
                    (stream, answer.is_ok_and(|r| r.code == resp::SUCCESS))
                }
            })
            .collect();
        let mut held = Vec::new();
        for (stream, answered) in concurrently(asking).await {
            if answered {
                held.push(stream);
            }
        }
        // `client` holds one slot, and the readiness probe's may not be given back yet.
        assert!(
            (max - 2..max).contains(&held.len()),
            "{} of {FLOOD} connections admitted, limit {max}",
            held.len()
        );
        let mut late = raw(&addr).await;
        assert!(
            closed_within(&mut late, TIMEOUT).await,
            "a full listener closes a new connection at once"
        );

        // At the limit, the store and the JSON files still get descriptors:
        // a new topic (topics.json, a new ConsumeQueue file), a message
        // (CommitLog, checkpoint) and a committed offset (consumerOffset.json).
        let before_send = now_ms();
        create_topic(c, "FdTopic", 1).await;
        send(c, "FdTopic", 0, b"sent at the limit", "").await;
        wait_max_offset(c, "FdTopic", 0, 1).await;
        call_ok(
            c,
            request(
                req::UPDATE_CONSUMER_OFFSET,
                SerializeType::Json,
                &[
                    ("consumerGroup", "FdGroup"),
                    ("topic", "FdTopic"),
                    ("queueId", "0"),
                    ("commitOffset", "1"),
                ],
            ),
        )
        .await;
        let offsets = store.join("config").join("consumerOffset.json");
        eventually("the offset to be persisted", TIMEOUT, || async {
            let bytes = std::fs::read(&offsets).ok()?;
            let table = ConsumerOffsetSerializeWrapper::decode(&bytes).ok()?;
            (table.offset_table.get("FdTopic@FdGroup")?.get(&0) == Some(&1)).then_some(())
        })
        .await;
        let checkpoint = store.join("checkpoint");
        eventually("the checkpoint to cover the message", TIMEOUT, || async {
            let bytes = std::fs::read(&checkpoint).ok()?;
            // logicsMsgTimestamp: the CommitLog itself waits for whole pages
            // before it is flushed, the ConsumeQueues do not.
            let logics = i64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
            (logics >= before_send).then_some(())
        })
        .await;

        // The NameServer and the VIP port have their own shares.
        let namesrv = connect(&format!("127.0.0.1:{ns_port}")).await;
        call_ok(
            &namesrv,
            request(req::GET_BROKER_CLUSTER_INFO, SerializeType::Json, &[]),
        )
        .await;
        let vip = connect(&format!("127.0.0.1:{}", port - 2)).await;
        call_ok(&vip, max_offset_request("FdTopic")).await;

        drop(held);
        eventually("a new client to be served", TIMEOUT, || async {
            let fresh = RemotingClient::connect(&addr, TIMEOUT, None).await.ok()?;
            let answer = fresh
                .invoke(max_offset_request("FdTopic"), TIMEOUT)
                .await
                .ok()?;
            (answer.code == resp::SUCCESS).then_some(())
        })
        .await;
    });

    let text = mqd.log_text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    let refusals = warnings
        .iter()
        .filter(|line| line.contains(&format!("{addr}: refused")))
        .count();
    let intervals = 1 + flood_began.elapsed().as_secs() / 10;
    assert!(
        (1..=intervals).contains(&(refusals as u64)),
        "one refusal warning per 10 s, {refusals} in {intervals} interval(s); log:\n{text}"
    );
    assert_eq!(
        warnings.len(),
        refusals,
        "nothing else may warn; log:\n{text}"
    );
    for starved in ["Too many open files", "os error 24"] {
        assert!(!text.contains(starved), "{starved}; log:\n{text}");
    }
    let status = mqd.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "clean exit; log:\n{}",
        mqd.log_text()
    );
}
