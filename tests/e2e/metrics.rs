//! The Prometheus endpoints of `mqd standalone` (`--metricsPort` for the
//! broker, `--namesrv-metrics-port` for the NameServer): scraped before and
//! after producing and consuming, the rocketmq-exporter families and mq's own
//! move with what the test did; other paths and methods are refused. A
//! SYNC_MASTER and its SLAVE, each with an endpoint, show the replication
//! latency, how far the slave is behind, and the slave's link.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::tempdir::TempDir;
use crate::support::*;

/// `GET path` over a fresh connection: the status line and the body.
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head.lines().next().unwrap_or_default().to_owned();
    if status.contains("200") {
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
    }
    (status, body.to_owned())
}

/// One scrape: `name{labels}` → value; each family has HELP and TYPE.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = http(port, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let mut samples = BTreeMap::new();
    for line in body.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let family = series.split('{').next().unwrap_or(series);
        let base = family
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            body.contains(&format!("# TYPE {family} "))
                || body.contains(&format!("# TYPE {base} ")),
            "{family} has no TYPE line"
        );
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// The value of the one series of `family` whose labels include all of `labels`.
fn value(samples: &BTreeMap<String, f64>, family: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<_> = samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(family)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{family} {labels:?}: {hits:?}");
    *hits[0].1
}

#[test]
fn scrapes_show_what_was_produced_and_consumed() {
    let (ns_metrics, broker_metrics) = (free_port(), free_port());
    let d = Standalone::start_with(&[
        "--namesrv-metrics-port",
        &ns_metrics.to_string(),
        "--metricsPort",
        &broker_metrics.to_string(),
    ]);
    let ns = d.namesrv.as_str();
    let (topic, group) = ("MetricsTopic", "metrics_group");
    let cluster = [("cluster", "DefaultCluster"), ("broker", "broker-a")];

    let before = scrape(broker_metrics);
    for family in [
        "rocketmq_broker_tps",
        "rocketmq_broker_qps",
        "rocketmq_brokeruntime_put_tps10",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "mq_connections",
    ] {
        assert!(
            before.keys().any(|k| k.split('{').next() == Some(family)),
            "{family} missing"
        );
    }
    let put_before = value(&before, "mq_messages_put_total", &[]);

    mqctl(
        Some(ns),
        &["topic", "create", "--topic", topic, "--queues", "2"],
        b"",
    )
    .ok();
    let bodies: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut args = vec!["produce", "-t", topic];
    args.extend(bodies.iter().map(String::as_str));
    mqctl(Some(ns), &args, b"").ok();
    mqctl(
        Some(ns),
        &[
            "consume",
            "-t",
            topic,
            "-g",
            group,
            "--from",
            "first",
            "--count",
            "50",
            "--timeout",
            "30",
        ],
        b"",
    )
    .ok();

    let after = scrape(broker_metrics);
    let topic_labels = [cluster[0], cluster[1], ("topic", topic)];
    let group_labels = [cluster[0], cluster[1], ("topic", topic), ("group", group)];
    assert_eq!(
        value(&after, "mq_messages_put_total", &[]) - put_before,
        50.0
    );
    assert!(value(&after, "rocketmq_producer_tps", &topic_labels) > 0.0);
    assert!(value(&after, "rocketmq_producer_message_size", &topic_labels) > 0.0);
    assert_eq!(
        value(&after, "rocketmq_producer_offset", &topic_labels),
        50.0
    );
    assert!(value(&after, "rocketmq_consumer_tps", &group_labels) > 0.0);
    assert_eq!(
        value(&after, "rocketmq_consumer_offset", &group_labels),
        50.0
    );
    assert_eq!(
        value(
            &after,
            "rocketmq_group_diff",
            &[("group", group), ("topic", topic), ("msgModel", "1")]
        ),
        0.0
    );
    assert!(
        value(
            &after,
            "rocketmq_broker_tps",
            &[("cluster", "DefaultCluster")]
        ) > 0.0
    );
    assert!(
        value(
            &after,
            "rocketmq_broker_qps",
            &[("cluster", "DefaultCluster")]
        ) > 0.0
    );
    assert!(value(&after, "rocketmq_brokeruntime_msg_put_total_today_now", &[]) >= 50.0);
    assert!(value(&after, "rocketmq_brokeruntime_commitlog_maxoffset", &[]) > 0.0);
    let appends = |s: &BTreeMap<String, f64>| value(s, "mq_put_latency_seconds_count", &[]);
    assert!(appends(&after) > appends(&before));
    assert!(value(&after, "mq_flush_latency_seconds_count", &[]) >= 0.0);
    assert!(value(&after, "mq_store_commitlog_bytes", &[]) > 0.0);
    assert!(value(&after, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 1e6);

    // 10 more, not consumed: the lag shows.
    mqctl(
        Some(ns),
        &[
            "produce", "-t", topic, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
        ],
        b"",
    )
    .ok();
    // The consume queues are built from the CommitLog just after the sends
    // are answered: the last one may take a moment to count.
    let lag = |s: &BTreeMap<String, f64>| {
        value(
            s,
            "rocketmq_group_diff",
            &[("group", group), ("topic", topic)],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut later = scrape(broker_metrics);
    while lag(&later) < 10.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        later = scrape(broker_metrics);
    }
    assert_eq!(lag(&later), 10.0);
    assert!(
        value(
            &later,
            "rocketmq_group_get_latency_by_storetime",
            &group_labels
        ) >= 0.0
    );

    // The NameServer's own endpoint.
    let names = scrape(ns_metrics);
    assert_eq!(value(&names, "mq_namesrv_brokers", &[]), 1.0);
    assert!(value(&names, "mq_namesrv_topics", &[]) >= 1.0);
    assert!(value(&names, "process_open_fds", &[]) > 0.0);

    // Only GET /metrics.
    assert!(http(broker_metrics, "GET", "/nope").0.contains("404"));
    assert!(http(broker_metrics, "POST", "/metrics").0.contains("405"));
}

#[test]
fn a_master_shows_its_slave_and_replication_latency_and_a_slave_its_link() {
    let dir = TempDir::new("metrics-ha").keep_on_failure();
    let ns_port = free_port();
    let ns = local(ns_port).to_string();
    let _namesrv = MqdCommand::new(
        "mqd namesrv",
        &["namesrv", "--listen", &ns],
        &dir.path().join("namesrv.log"),
    )
    .ready_at(local(ns_port))
    .start();
    let (master_metrics, slave_metrics) = (free_port().to_string(), free_port().to_string());
    let group = HaGroup {
        name: "broker-m".into(),
        master: start_broker_at(
            &dir,
            &ns,
            "broker-m",
            "SYNC_MASTER",
            "127.0.0.1",
            None,
            &[("metricsPort", &master_metrics)],
        ),
        slave: start_broker_at(
            &dir,
            &ns,
            "broker-m",
            "SLAVE",
            "127.0.0.1",
            None,
            &[("metricsPort", &slave_metrics)],
        ),
    };
    async_io::block_on(group.wait_linked());
    // Sync sends to a SYNC_MASTER wait for the slave.
    mqctl(
        Some(&ns),
        &["produce", "-t", "HaMetrics", "a", "b", "c"],
        b"",
    )
    .ok();
    async_io::block_on(group.wait_caught_up(Duration::from_secs(20)));

    let master = scrape(master_metrics.parse().unwrap());
    assert!(value(&master, "mq_replication_latency_seconds_count", &[]) >= 3.0);
    assert_eq!(value(&master, "mq_ha_slave_behind_bytes", &[]), 0.0);
    let slave = scrape(slave_metrics.parse().unwrap());
    assert_eq!(value(&slave, "mq_ha_connected", &[]), 1.0);
    drop(group);
}
