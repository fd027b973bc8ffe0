//! `mqctl` end to end: every verb run (in this process, through `mqctl::run`)
//! against a real `mqd standalone`, checking what it prints and how it exits.

use std::time::{Duration, Instant};

use mq_protocol::time::now_ms;
use serde_json::Value;

use crate::support::*;

// ---------------------------------------------------------------------------
// The daemon and mqctl

/// A daemon with smaller files than the shared default: these tests make many.
fn start() -> Standalone {
    Standalone::start_with(&[
        "--mappedFileSizeCommitLog",
        "16777216",
        "--mappedFileSizeConsumeQueue",
        "120000",
    ])
}

impl Standalone {
    /// mqctl against this daemon.
    fn run(&self, args: &[&str]) -> Out {
        mqctl(Some(&self.namesrv), args, b"")
    }

    /// mqctl against this daemon, with `stdin` as standard input.
    fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        mqctl(Some(&self.namesrv), args, stdin)
    }

    fn create_topic(&self, topic: &str, queues: &str) {
        self.run(&["topic", "create", "--topic", topic, "--queues", queues])
            .ok();
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn usage_errors_exit_2_with_one_line() {
    let none = None;
    assert_one_error_line(&mqctl(none, &["frobnicate"], b""), 2, "frobnicate");
    assert_one_error_line(&mqctl(none, &["produce", "x"], b""), 2, "--topic");
    assert_one_error_line(
        &mqctl(none, &["produce", "-t", "T", "--mode", "fast", "x"], b""),
        2,
        "sync, async or oneway",
    );
    assert_one_error_line(
        &mqctl(none, &["produce", "-t", "T", "--count", "3", "x"], b""),
        2,
        "--count",
    );
    assert_one_error_line(
        &mqctl(none, &["produce", "-t", "T", "--delay", "19", "x"], b""),
        2,
        "delay",
    );
    assert_one_error_line(
        &mqctl(none, &["consume", "-t", "T", "--from", "yesterday"], b""),
        2,
        "first, last",
    );
    assert_one_error_line(&mqctl(none, &["topic"], b""), 2, "mqctl topic --help");
    assert_one_error_line(&mqctl(none, &["query", "--topic", "T"], b""), 2, "--key");
    assert_one_error_line(
        &mqctl(none, &["query", "--id", "ABCDEF"], b""),
        2,
        "needs --topic",
    );
    let help = mqctl(none, &["--help"], b"").ok();
    assert!(help.stdout.contains("Error codes"), "{help:?}");
    assert!(help.stdout.contains("2 usage error"), "{help:?}");
    let help = mqctl(none, &["bench", "produce", "--help"], b"").ok();
    assert!(help.stdout.contains("--duration"), "{help:?}");
}

#[test]
fn an_unreachable_nameserver_exits_1_with_one_line() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    for args in [
        &["topic", "list"][..],
        &["produce", "-t", "T", "hello"],
        &["cluster"],
        &["consume", "-t", "T", "--count", "1"],
        &["bench", "produce", "-t", "T", "--count", "1"],
    ] {
        assert_one_error_line(&mqctl(Some(&nowhere), args, b""), 1, &nowhere);
    }
    // The address may also come after the verb.
    let out = mqctl(None, &["topic", "list", "-n", &nowhere], b"");
    assert_one_error_line(&out, 1, &nowhere);
}

#[test]
fn produce_in_every_mode_and_consume_as_text_and_json() {
    let d = start();
    let topic = "MqctlRoundTrip";
    d.create_topic(topic, "2");

    // Arguments, sync, with tag and keys; JSON ids.
    let out = d
        .run(&[
            "produce", "-t", topic, "--tag", "TagA", "-k", "k1", "-k", "k2", "--format", "json",
            "one", "two",
        ])
        .ok();
    let sent = out.json_lines();
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(s["status"], "SEND_OK");
        assert_eq!(s["msgId"].as_str().unwrap().len(), 32);
        assert_eq!(s["offsetMsgId"].as_str().unwrap().len(), 32);
    }
    // Standard input, async, text: one line per message, in input order.
    let out = d
        .run_stdin(
            &["produce", "-t", topic, "--tag", "TagB", "--mode", "async"],
            b"three\n\nfour\r\nfive",
        )
        .ok();
    assert_eq!(out.stdout.lines().count(), 3, "{out:?}");
    assert!(out
        .stdout
        .lines()
        .all(|l| l.starts_with("msgId=") && l.ends_with("status=SEND_OK")));
    // A binary body, one-way.
    let out = d
        .run_stdin(
            &["produce", "-t", topic, "--mode", "oneway"],
            &[0xff, 0x00, 0x7f],
        )
        .ok();
    assert!(out.stdout.contains("status=ONEWAY"), "{out:?}");
    // Generated, each mode: a summary line.
    for mode in ["sync", "async", "oneway"] {
        let out = d
            .run(&[
                "produce", "-t", topic, "--count", "5", "--size", "16", "--mode", mode,
            ])
            .ok();
        assert!(
            out.stdout
                .starts_with(&format!("sent 5 messages to {topic}")),
            "{out:?}"
        );
        assert!(out.stdout.contains("0 errors"), "{out:?}");
    }
    let total = 2 + 3 + 1 + 15;

    // JSON: every message, bodies checked.
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "--from",
            "first",
            "--count",
            &total.to_string(),
            "--format",
            "json",
            "--timeout",
            "30",
        ])
        .ok();
    let got = out.json_lines();
    assert_eq!(got.len(), total);
    let by_body = |b: &str| {
        got.iter()
            .find(|m| m["body"] == b)
            .unwrap_or_else(|| panic!("no {b} in {got:?}"))
    };
    let one = by_body("one");
    assert_eq!(one["tags"], "TagA");
    assert_eq!(one["keys"], serde_json::json!(["k1", "k2"]));
    assert_eq!(one["msgId"], sent[0]["msgId"]);
    assert_eq!(one["offsetMsgId"], sent[0]["offsetMsgId"]);
    assert_eq!(by_body("four")["tags"], "TagB");
    let binary = by_body("ff007f");
    assert_eq!(binary["bodyEncoding"], "hex");
    assert_eq!(
        got.iter()
            .filter(|m| m["body"] == "abcdefghijklmnop")
            .count(),
        15
    );

    // Text, a tag filter, another group: `body=` or `hex=` last.
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "--from",
            "first",
            "--tag",
            "TagA || TagB",
            "--count",
            "5",
            "--group",
            "text_reader",
            "--timeout",
            "30",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{out:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("tags=TagA keys=k1,k2 body=two")),
        "{out:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("tags=TagB keys= body=five")),
        "{out:?}"
    );
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "--from",
            "first",
            "--count",
            &total.to_string(),
            "--group",
            "hex_reader",
            "--timeout",
            "30",
        ])
        .ok();
    assert!(
        out.stdout.lines().any(|l| l.ends_with(" hex=ff007f")),
        "{out:?}"
    );

    // A count that never arrives: exit 1 after the timeout, what came printed.
    let out = d.run(&[
        "consume",
        "-t",
        topic,
        "--from",
        "first",
        "--count",
        "1000",
        "--timeout",
        "2",
        "--group",
        "greedy",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout.lines().count(), total);
    assert!(out.stderr.contains(&format!("{total} of 1000")), "{out:?}");
}

#[test]
fn topic_and_cluster_admin() {
    let d = start();
    let topic = "MqctlAdminTopic";
    let out = d
        .run(&[
            "topic", "create", "--topic", topic, "--queues", "3", "--format", "json",
        ])
        .ok();
    let created: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(created["routed"], true, "{out:?}");
    assert_eq!(created["brokers"][0]["brokerName"], "broker-a");

    let out = d.run(&["topic", "list"]).ok();
    assert!(out.stdout.lines().any(|l| l == topic), "{out:?}");
    let out = d.run(&["topic", "list", "--format", "json"]).ok();
    let list: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == topic));

    let out = d.run(&["topic", "route", "--topic", topic]).ok();
    assert!(out.stdout.contains("broker-a"), "{out:?}");
    assert!(out.stdout.contains("6 (RW)"), "{out:?}");
    let out = d
        .run(&["topic", "route", "--topic", topic, "--format", "json"])
        .ok();
    let route: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(route["queueDatas"][0]["readQueueNums"], 3);

    d.run(&["produce", "-t", topic, "a", "b", "c", "d"]).ok();
    // The consume queues count a message just after its send is answered:
    // the last one may take a moment to show.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let out = d
            .run(&["topic", "stats", "--topic", topic, "--format", "json"])
            .ok();
        let stats: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        if stats["messages"] == 4 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(stats["queues"].as_array().unwrap().len(), 3);
    assert_eq!(stats["messages"], 4);
    let out = d.run(&["topic", "stats", "--topic", topic]).ok();
    assert!(out.stdout.contains("messages stored: 4"), "{out:?}");

    let out = d.run(&["cluster"]).ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("DefaultCluster"))
        .unwrap_or_else(|| panic!("{out:?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "broker-a");
    assert_eq!(cells[2], "0");
    assert!(cells[3].starts_with("127.0.0.1:"));
    assert!(cells[5].parse::<u64>().unwrap() >= 4, "{row}");
    let out = d.run(&["cluster", "--format", "json"]).ok();
    let broker: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(broker["online"], true);
    let out = d.run(&["cluster", "--cluster", "NoSuchCluster"]);
    assert_one_error_line(&out, 1, "NoSuchCluster");

    let out = d.run(&["topic", "delete", "--topic", topic]).ok();
    assert!(out.stdout.contains("on broker broker-a"), "{out:?}");
    assert!(out.stdout.contains("on NameServer"), "{out:?}");
    let out = d.run(&["topic", "route", "--topic", topic]);
    assert_one_error_line(&out, 1, "does not exist");
    let out = d.run(&["topic", "list"]).ok();
    assert!(!out.stdout.lines().any(|l| l == topic), "{out:?}");
}

#[test]
fn group_progress_and_offset_reset() {
    let d = start();
    let topic = "MqctlOffsets";
    let group = "mqctl_offsets_group";
    d.create_topic(topic, "2");
    let first: Vec<String> = (0..6).map(|i| format!("early-{i}")).collect();
    let mut args = vec!["produce", "-t", topic];
    args.extend(first.iter().map(String::as_str));
    d.run(&args).ok();
    // Every early message was stored before `reset_to`; the late ones after.
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "-g",
            group,
            "--from",
            "first",
            "--count",
            "6",
            "--format",
            "json",
            "--timeout",
            "30",
        ])
        .ok();
    let reset_to = out
        .json_lines()
        .iter()
        .map(|m| m["storeTimestamp"].as_i64().unwrap())
        .max()
        .unwrap()
        + 1;
    while now_ms() <= reset_to {
        std::thread::yield_now();
    }
    let late: Vec<String> = (0..4).map(|i| format!("late-{i}")).collect();
    let mut args = vec!["produce", "-t", topic];
    args.extend(late.iter().map(String::as_str));
    d.run(&args).ok();

    let out = d
        .run(&["group", "progress", "--group", group, "--format", "json"])
        .ok();
    let progress: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(progress["totalDiff"], 4, "{out:?}");
    let committed: i64 = progress["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["consumerOffset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 6);
    let out = d.run(&["group", "progress", "--group", group]).ok();
    assert!(out.stdout.contains("total diff: 4"), "{out:?}");
    assert!(out.stdout.contains("consumers online: 0"), "{out:?}");
    let out = d.run(&["group", "progress", "--group", "nobody_here"]);
    assert_one_error_line(&out, 1, "nobody_here");

    // Back to the start: all ten again.
    let out = d
        .run(&[
            "offset",
            "reset",
            "-g",
            group,
            "-t",
            topic,
            "--timestamp",
            "0",
            "--format",
            "json",
        ])
        .ok();
    let reset: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(reset["queues"]
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["newOffset"] == 0));
    let old: i64 = reset["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["oldOffset"].as_i64().unwrap())
        .sum();
    assert_eq!(old, 6);
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "-g",
            group,
            "--count",
            "10",
            "--timeout",
            "30",
        ])
        .ok();
    assert_eq!(out.stdout.lines().count(), 10);

    // To the point between the two batches: exactly the late ones.
    let out = d
        .run(&[
            "offset",
            "reset",
            "-g",
            group,
            "-t",
            topic,
            "--timestamp",
            &reset_to.to_string(),
        ])
        .ok();
    assert!(out.stdout.contains("NEW OFFSET"), "{out:?}");
    let out = d
        .run(&[
            "consume",
            "-t",
            topic,
            "-g",
            group,
            "--count",
            "4",
            "--format",
            "json",
            "--timeout",
            "30",
        ])
        .ok();
    let mut bodies: Vec<String> = out
        .json_lines()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, late);
    let out = d
        .run(&["group", "progress", "--group", group, "--format", "json"])
        .ok();
    let progress: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(progress["totalDiff"], 0, "{out:?}");
}

#[test]
fn query_by_key_offset_id_and_unique_id() {
    let d = start();
    let topic = "MqctlQuery";
    d.create_topic(topic, "2");
    let out = d
        .run(&[
            "produce", "-t", topic, "-k", "order-42", "--format", "json", "findme",
        ])
        .ok();
    let sent = &out.json_lines()[0];
    let unique = sent["msgId"].as_str().unwrap().to_owned();
    let offset_id = sent["offsetMsgId"].as_str().unwrap().to_owned();
    d.run(&["produce", "-t", topic, "-k", "other", "noise"])
        .ok();

    // The index is written behind the commit log: poll until it has the key.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = d.run(&[
            "query", "-t", topic, "--key", "order-42", "--format", "json",
        ]);
        if out.code == 0 || Instant::now() > deadline {
            break out.ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let found = out.json_lines();
    assert_eq!(found.len(), 1, "{out:?}");
    assert_eq!(found[0]["body"], "findme");
    assert_eq!(found[0]["msgId"], unique.as_str());

    let out = d.run(&["query", "--id", &offset_id]).ok();
    assert!(out.stdout.contains("body:            findme"), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("offsetMsgId:     {offset_id}")),
        "{out:?}"
    );

    let out = d
        .run(&[
            "query", "--id", &unique, "--topic", topic, "--format", "json",
        ])
        .ok();
    let found = out.json_lines();
    assert_eq!(found.len(), 1, "{out:?}");
    assert_eq!(found[0]["offsetMsgId"], offset_id.as_str());

    let out = d.run(&["query", "-t", topic, "--key", "no-such-key"]);
    assert_one_error_line(&out, 1, "no-such-key");
}

/// `bench <what> tps=… mb_per_s=… avg_ms=… p50_ms=… p99_ms=… max_ms=… errors=…`,
/// then `not_ok=…` when producing or `duplicates=…` when consuming.
fn summary(out: &Out, what: &str) -> Vec<(String, f64)> {
    let prefix = format!("bench {what} ");
    let line = out
        .stdout
        .lines()
        .rfind(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no summary in {out:?}"));
    let fields: Vec<(String, f64)> = line[prefix.len()..]
        .split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv} in {line}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("{kv} in {line}")),
            )
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected = vec![
        "tps", "mb_per_s", "avg_ms", "p50_ms", "p99_ms", "max_ms", "errors",
    ];
    expected.push(if what == "consume" {
        "duplicates"
    } else {
        "not_ok"
    });
    expected.push("client_cpu_us");
    if line.contains(" server_cpu_us=") {
        expected.push("server_cpu_us");
    }
    assert_eq!(names, expected, "{line}");
    fields
}

fn field(fields: &[(String, f64)], name: &str) -> f64 {
    fields.iter().find(|(k, _)| k == name).unwrap().1
}

#[test]
fn bench_produce_and_consume_print_summaries() {
    let d = start();
    let topic = "MqctlBench";
    d.create_topic(topic, "4");
    let pid = d.pid().to_string();
    let out = d
        .run(&[
            "bench",
            "produce",
            "-t",
            topic,
            "--count",
            "400",
            "--threads",
            "4",
            "--size",
            "100",
            "--server-pid",
            &pid,
        ])
        .ok();
    let s = summary(&out, "produce");
    // CPU per message of mqctl and of the broker, both counted.
    assert!(field(&s, "client_cpu_us") >= 0.0);
    assert!(field(&s, "server_cpu_us") >= 0.0);
    assert!(field(&s, "tps") > 0.0);
    assert_eq!(field(&s, "errors"), 0.0);
    assert_eq!(field(&s, "not_ok"), 0.0);
    assert!(field(&s, "p50_ms") <= field(&s, "p99_ms"));
    assert!(field(&s, "p99_ms") <= field(&s, "max_ms"));
    let out = d
        .run(&[
            "bench",
            "produce",
            "-t",
            topic,
            "--duration",
            "1.5",
            "--mode",
            "async",
            "--threads",
            "2",
        ])
        .ok();
    assert!(
        out.stdout.lines().any(|l| l.starts_with("[   1s] tps=")),
        "a line per second: {out:?}"
    );
    summary(&out, "produce");
    let out = d
        .run(&[
            "bench", "produce", "-t", topic, "--count", "100", "--mode", "oneway",
        ])
        .ok();
    summary(&out, "produce");

    let out = d
        .run(&[
            "bench",
            "consume",
            "-t",
            topic,
            "--from",
            "first",
            "--count",
            "500",
            "--duration",
            "30",
        ])
        .ok();
    let s = summary(&out, "consume");
    assert!(field(&s, "tps") > 0.0);
    assert!(field(&s, "avg_ms") >= 0.0);
    assert_eq!(field(&s, "errors"), 0.0);
}

#[test]
fn bench_consume_count_ends_once_that_many_messages_arrived() {
    // 1 MiB segments: the backlog spans several.
    let d = Standalone::start_with(&[
        "--mappedFileSizeCommitLog",
        "1048576",
        "--mappedFileSizeConsumeQueue",
        "12000",
    ]);
    let topic = "MqctlBacklog";
    d.create_topic(topic, "8");
    let sent = "20000";
    let out = d
        .run(&[
            "bench",
            "produce",
            "-t",
            topic,
            "--count",
            sent,
            "--threads",
            "8",
            "--size",
            "100",
        ])
        .ok();
    assert_eq!(field(&summary(&out, "produce"), "errors"), 0.0);
    let segments = std::fs::read_dir(d.data_dir().join("store/commitlog"))
        .unwrap()
        .count();
    assert!(segments >= 3, "the backlog fills {segments} segment(s)");
    // Exactly as many as there are: the last one must end the run, whichever
    // consumer gets it, with the others still waiting for more.
    for threads in ["1", "2", "4"] {
        let started = Instant::now();
        let out = d
            .run(&[
                "bench",
                "consume",
                "-t",
                topic,
                "--from",
                "first",
                "--count",
                sent,
                "--threads",
                threads,
                "--format",
                "json",
            ])
            .ok();
        let lines = out.json_lines();
        let last = lines.last().unwrap_or_else(|| panic!("no output: {out:?}"));
        assert_eq!(last["summary"], true, "{threads} consumer(s): {out:?}");
        assert_eq!(last["messages"], 20000, "{threads} consumer(s): {last}");
        assert_eq!(last["errors"], 0, "{threads} consumer(s): {last}");
        assert!(last["duplicates"].is_u64(), "{last}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{threads} consumer(s) took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn broker_stats_and_group_rates_show_what_was_sent_and_consumed() {
    let d = start();
    let (topic, group) = ("MqctlStats", "mqctl_stats_group");
    d.create_topic(topic, "2");
    let bodies: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
    let mut args = vec!["produce", "-t", topic];
    args.extend(bodies.iter().map(String::as_str));
    d.run(&args).ok();
    d.run(&[
        "consume",
        "-t",
        topic,
        "-g",
        group,
        "--from",
        "first",
        "--count",
        "25",
        "--timeout",
        "30",
    ])
    .ok();

    let out = d.run(&["broker", "stats", "--format", "json"]).ok();
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let runtime = &lines[0]["runtime"];
    assert_eq!(runtime["msgPutTotalTodayNow"], "25", "{out:?}");
    assert_eq!(runtime["msgGetTotalTodayNow"], "25", "{out:?}");
    let put_tps: Vec<f64> = runtime["putTps"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(put_tps.iter().all(|r| *r > 0.0), "{out:?}");

    let out = d
        .run(&["broker", "stats", "--broker", "broker-a", "--topic", topic])
        .ok();
    let text = &out.stdout;
    assert!(text.starts_with("broker-a ("), "{text}");
    assert!(text.contains("messages in:  25 today"), "{text}");
    assert!(text.contains("messages out: 25 today"), "{text}");
    assert!(text.contains("25 in the last day"), "{text}");
    assert!(text.contains("oldest message: "), "{text}");

    let out = d
        .run(&["group", "progress", "--group", group, "--format", "json"])
        .ok();
    let progress: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(progress["consumeTps"].as_f64().unwrap() > 0.0, "{out:?}");
    let out = d.run(&["group", "progress", "--group", group]).ok();
    assert!(
        out.stdout.contains(" msgs/s over the last minute"),
        "{out:?}"
    );

    let out = d.run(&["broker", "stats", "--broker", "nobody"]);
    assert_one_error_line(&out, 1, "nobody");
}
