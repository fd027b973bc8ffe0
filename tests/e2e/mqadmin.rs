//! The official admin tool of RocketMQ 4.9.7 (`mqadmin`, from
//! `org.apache.rocketmq:rocketmq-tools:4.9.7` on Maven Central) against `mqd`:
//! `clusterList`, `brokerStatus`, `statsAll` and `brokerConsumeStats` print no
//! exception and the numbers of what the test did.
//!
//! The tools' class path comes from `tests/mqadmin/pom.xml` (`mvn
//! dependency:build-classpath`, once per test run, under a file lock); they
//! run with `ROCKETMQ_HOME` set to a temporary folder holding the logback
//! file mqadmin insists on. A missing `java` or `mvn` fails the test, naming
//! the tool.
//!
//! Run: `cargo test -p mq-daemon --test e2e mqadmin -- --nocapture`

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::java_compat::{maven, require_tool};
use crate::support::tempdir::TempDir;
use crate::support::*;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("daemon/ has a parent")
        .join("tests/mqadmin")
}

/// The tools' class path, resolved once per process.
fn class_path() -> String {
    static CP: OnceLock<Result<String, String>> = OnceLock::new();
    CP.get_or_init(resolve_class_path)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn resolve_class_path() -> Result<String, String> {
    let project = project();
    let out_file = project.join("target/classpath.txt");
    maven(
        &project,
        &[
            "dependency:build-classpath",
            &format!("-Dmdep.outputFile={}", out_file.display()),
        ],
        "mq-mqadmin-classpath.lock",
        "resolving rocketmq-tools 4.9.7",
    )?;
    fs::read_to_string(&out_file)
        .map(|cp| cp.trim().to_owned())
        .map_err(|e| format!("read {}: {e}", out_file.display()))
}

/// A home for mqadmin: `conf/logback_tools.xml`, and the tools' log.
struct ToolsHome(TempDir);

impl ToolsHome {
    fn new() -> ToolsHome {
        let dir = TempDir::new("mqadmin");
        let conf = dir.path().join("conf");
        fs::create_dir_all(&conf).expect("create conf/");
        fs::copy(
            project().join("logback_tools.xml"),
            conf.join("logback_tools.xml"),
        )
        .expect("copy logback_tools.xml");
        ToolsHome(dir)
    }

    /// Runs `mqadmin args...`; returns stdout and stderr together.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(require_tool("java"))
            .arg("-cp")
            .arg(class_path())
            .arg(format!("-Drocketmq.home.dir={}", self.0.path().display()))
            .arg("org.apache.rocketmq.tools.command.MQAdminStartup")
            .args(args)
            .env("ROCKETMQ_HOME", self.0.path())
            .current_dir(self.0.path())
            .stdin(Stdio::null())
            .output()
            .expect("run java");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ mqadmin {}\n{text}", args.join(" "));
        assert!(out.status.success(), "mqadmin {args:?} failed: {text}");
        for bad in ["Exception", "\tat org.", "command failed"] {
            assert!(
                !text.contains(bad),
                "mqadmin {args:?} printed {bad:?}:\n{text}"
            );
        }
        text
    }
}

/// The whitespace-separated fields of the first line containing `needle`.
fn row<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
        .split_whitespace()
        .collect()
}

fn number(field: &str) -> f64 {
    field
        .parse()
        .unwrap_or_else(|_| panic!("{field:?} is not a number"))
}

#[test]
fn mqadmin_cluster_list_broker_status_stats_all_and_consume_stats() {
    let _one_jvm_at_a_time = crate::java_compat::exclusive();
    // Fail early, naming the tool, before a daemon starts.
    class_path();
    let d = Standalone::start();
    let ns = d.namesrv.as_str();
    let (topic, group) = ("MqadminStats", "mqadmin_stats_group");
    let mqctl_ok = |args: &[&str]| mqctl(Some(ns), args, b"").ok();
    mqctl_ok(&["topic", "create", "--topic", topic, "--queues", "4"]);
    let bodies: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let mut args = vec!["produce", "-t", topic];
    args.extend(bodies.iter().map(String::as_str));
    mqctl_ok(&args);
    mqctl_ok(&[
        "consume",
        "-t",
        topic,
        "-g",
        group,
        "--from",
        "first",
        "--count",
        "40",
        "--timeout",
        "30",
    ]);

    let tools = ToolsHome::new();

    // #Cluster Name #Broker Name #BID #Addr #Version #InTPS(LOAD) #OutTPS(LOAD) #PCWait(ms) #Hour #SPACE
    let out = tools.run(&["clusterList", "-n", ns]);
    let r = row(&out, &d.broker_addr);
    assert_eq!(r[4], "V4_9_7", "{out}");
    let in_tps = number(r[5].split('(').next().unwrap());
    assert!(in_tps >= 0.0, "{out}");
    let hours = number(r[r.len() - 2]);
    assert!(
        (0.0..1.0).contains(&hours),
        "messages are minutes old: {out}"
    );
    let space = number(r[r.len() - 1]);
    assert!(space > 0.0 && space < 1.0, "{out}");

    // brokerStatus: `key : value` lines.
    let out = tools.run(&["brokerStatus", "-n", ns, "-b", &d.broker_addr]);
    let value = |key: &str| -> String {
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
    };
    assert_eq!(number(&value("msgPutTotalTodayNow")), 40.0, "{out}");
    assert_eq!(number(&value("msgGetTotalTodayNow")), 40.0, "{out}");
    assert_eq!(number(&value("putMessageTimesTotal")), 40.0, "{out}");
    let put_tps: Vec<f64> = value("putTps").split(' ').map(number).collect();
    assert_eq!(put_tps.len(), 3, "{out}");
    assert!(
        put_tps[2] > 0.0,
        "40 messages in the last 10 minutes: {out}"
    );
    assert!(value("runtime").starts_with("[ 0 days, 0 hours"), "{out}");
    assert!(
        value("commitLogDirCapacity").starts_with("Total : "),
        "{out}"
    );

    // statsAll: #Topic #Consumer Group #Accumulation #InTPS #OutTPS #InMsg24Hour #OutMsg24Hour
    let out = tools.run(&["statsAll", "-n", ns, "-t", topic]);
    let r = row(&out, group);
    assert_eq!(r[0], topic, "{out}");
    assert_eq!(number(r[2]), 0.0, "everything consumed: {out}");
    assert!(number(r[3]) > 0.0 && number(r[4]) > 0.0, "{out}");
    assert_eq!(number(r[5]), 40.0, "{out}");
    assert_eq!(number(r[6]), 40.0, "{out}");

    // brokerConsumeStats (GET_BROKER_CONSUME_STATS): 5 more messages, not consumed.
    mqctl_ok(&["produce", "-t", topic, "a", "b", "c", "d", "e"]);
    let out = tools.run(&["brokerConsumeStats", "-n", ns, "-b", &d.broker_addr]);
    let r = row(&out, group);
    assert_eq!(r[0], topic, "{out}");
    assert!(out.contains("Diff Total: 5"), "{out}");
}
