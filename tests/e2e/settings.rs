//! What an operator sees of the configuration: `mqd` refusing a bad value
//! with the file, the line and the reason (exit 2), warning about an unknown
//! key with its file and line, `--print-config` telling where each value
//! came from; and a broker at the default log level staying quiet however
//! many messages pass through it.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// `mqd <args>` to completion, with `env` set and nothing else inherited
/// that would change what it reads.
fn mqd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqd"));
    command
        .args(args)
        .env_remove("NAMESRV_ADDR")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run mqd")
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write the configuration");
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_value_stops_mqd_at_start_naming_file_line_and_reason() {
    let dir = TempDir::new("settings-bad");
    let store = dir.path().join("store").display().to_string();
    let conf = write(
        &dir.path().join("broker.conf"),
        &format!("# a broker\nbrokerName=b\nstorePathRootDir={store}\nlistenPort=10911x\n"),
    );
    let out = mqd(&["broker", "-c", &conf], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{conf}:4: listenPort: \"10911x\" is not a valid number from 0 to 65535"
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("store").exists(),
        "nothing was opened before the refusal"
    );

    // Keys that contradict each other name where each was set.
    let conf = write(
        &dir.path().join("slave.conf"),
        &format!("brokerRole=SLAVE\nstorePathRootDir={store}\n"),
    );
    let out = mqd(&["broker", "-c", &conf], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("brokerRole SLAVE needs brokerId > 0")
            && stderr(&out).contains("brokerId from default")
            && stderr(&out).contains(&format!("brokerRole from {conf}:1")),
        "{}",
        stderr(&out)
    );

    // A bad value on the command line, and in a NameServer's file.
    let out = mqd(&["broker", "-c", &conf, "--brokerId", "-"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("command line: brokerId: \"-\" is not a valid number"),
        "{}",
        stderr(&out)
    );
    let conf = write(
        &dir.path().join("namesrv.conf"),
        "listenIP=127.0.0.1\nscanNotActiveBrokerInterval=0\n",
    );
    let out = mqd(&["namesrv", "-c", &conf], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{conf}:2: scanNotActiveBrokerInterval: must be more than 0"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn print_config_shows_each_value_and_where_it_came_from() {
    let dir = TempDir::new("settings-print");
    let conf = write(
        &dir.path().join("broker.conf"),
        "brokerName=broker-x\n\nlistenport=20911\nlistenPort=20911\nrocketmqHome=/opt/rocketmq\n",
    );
    let out = mqd(
        &[
            "broker",
            "-c",
            &conf,
            "--storePathRootDir",
            "/srv/mq",
            "--print-config",
        ],
        &[("NAMESRV_ADDR", "10.0.0.1:9876")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
        let mut cells = line.split_whitespace().map(str::to_owned);
        let key = cells.next().unwrap_or_default();
        let value = cells.next().unwrap_or_default();
        let source = cells.collect::<Vec<_>>().join(" ");
        vec![key, value, source]
    };
    assert_eq!(
        row("brokerName"),
        ["brokerName", "broker-x", &format!("{conf}:1")]
    );
    assert_eq!(
        row("listenPort"),
        ["listenPort", "20911", &format!("{conf}:4")]
    );
    assert_eq!(
        row("storePathRootDir"),
        ["storePathRootDir", "/srv/mq", "command line"]
    );
    assert_eq!(
        row("namesrvAddr"),
        ["namesrvAddr", "10.0.0.1:9876", "environment NAMESRV_ADDR"]
    );
    assert_eq!(
        row("flushDiskType"),
        ["flushDiskType", "ASYNC_FLUSH", "default"]
    );
    assert_eq!(row("haListenPort"), ["haListenPort", "20912", "default"]);
    // A typo is a warning with its place; a RocketMQ key mq has no use for is not.
    let warnings = stderr(&out);
    assert!(
        warnings.contains(&format!(
            "{conf}:3: unknown broker key \"listenport\" (ignored); did you mean listenPort?"
        )),
        "{warnings}"
    );
    assert!(!warnings.contains("rocketmqHome"), "{warnings}");

    let conf = write(
        &dir.path().join("namesrv.conf"),
        "listenPort=9877\nlistenIp=0.0.0.0\n",
    );
    let out = mqd(
        &[
            "namesrv",
            "-c",
            &conf,
            "--listenIP",
            "127.0.0.2",
            "--acl-file",
            "/etc/mq/namesrv_acl.yml",
            "--print-config",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["listenPort", "9877", &format!("{conf}:1")]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["plainAclFile", "/etc/mq/namesrv_acl.yml", "command", "line"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["listenIP", "127.0.0.2", "command", "line"]),
        "{text}"
    );
    assert!(
        stderr(&out).contains(&format!(
            "{conf}:2: unknown NameServer key \"listenIp\" (ignored); did you mean listenIP?"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_default_log_level_writes_no_line_per_message() {
    let dir = TempDir::new("settings-quiet");
    let log = dir.path().join("mqd.log");
    let (ns_port, port) = (free_port(), free_broker_port());
    let mut mqd = MqdCommand::standalone(&dir.path().join("data"), ns_port, port, &log)
        .args(flags(&SMALL_STORE))
        .rust_log("warn")
        .start();
    let namesrv = local(ns_port).to_string();
    async_io::block_on(wait_registered(&namesrv));
    let before = mqd.log_text().lines().count();
    const MESSAGES: usize = 500;
    let bodies: String = (0..MESSAGES).map(|i| format!("m{i}\n")).collect();
    mqctl(
        Some(&namesrv),
        &["produce", "--topic", "Quiet", "--summary"],
        bodies.as_bytes(),
    )
    .ok();
    for mode in ["sync", "async", "oneway"] {
        mqctl(
            Some(&namesrv),
            &["produce", "--topic", "Quiet", "--mode", mode, "--summary"],
            b"one\ntwo\n",
        )
        .ok();
    }
    let out = mqctl(
        Some(&namesrv),
        &[
            "consume", "--topic", "Quiet", "--group", "quiet", "--from", "first", "--count", "500",
        ],
        b"",
    )
    .ok();
    assert!(out.stdout.lines().count() >= MESSAGES, "{out:?}");
    assert!(mqd.terminate().success());
    let text = mqd.log_text();
    let during = text.lines().count() - before;
    assert!(
        during < 10,
        "{during} log lines at the default level while {MESSAGES} messages passed:\n{text}"
    );
}
