//! Access control end to end: a broker with `aclEnable=true` and mq's own
//! client signing through `mqctl` (`--access-key`/`--secret-key` and
//! `MQ_ACCESS_KEY`/`MQ_SECRET_KEY`), the accounts file reloaded while the
//! broker runs, a broker with ACL off ignoring the signing fields, and the
//! NameServer's write codes behind `--namesrv-acl-file`. The
//! stock Java client's view is `java_compat::java_client_with_acl`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mq::Credentials;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{RemotingCommand, SerializeType};

use crate::support::*;

const TOPIC: &str = "AclTopic";

fn accounts(extra: &str) -> String {
    format!(
        "accounts:\n\
         \x20 - accessKey: RocketMQ\n\
         \x20   secretKey: 12345678\n\
         \x20   defaultTopicPerm: DENY\n\
         \x20   defaultGroupPerm: SUB\n\
         \x20   topicPerms: [\"{TOPIC}=PUB|SUB\"]\n\
         \x20 - accessKey: rocketmqAdmin\n\
         \x20   secretKey: 87654321\n\
         \x20   admin: true\n\
         {extra}"
    )
}

/// A broker with ACL on, reading `plain_acl.yml` in `dir`.
fn acl_broker(dir: &TempDir) -> (TestBroker, PathBuf) {
    let file = dir.path().join("plain_acl.yml");
    std::fs::write(&file, accounts("")).expect("write the accounts file");
    let path = file.display().to_string();
    let broker = TestBroker::start_with(&[("aclEnable", "true"), ("plainAclFile", &path)]);
    (broker, file)
}

fn as_user(ns: &str, user: &str, secret: &str, args: &[&str]) -> Out {
    let mut all = vec!["--access-key", user, "--secret-key", secret];
    all.extend_from_slice(args);
    mqctl(Some(ns), &all, b"")
}

/// mqctl failed (exit 1) with the broker's ACL refusal for `reason`.
fn refused(out: &Out, reason: &str) {
    assert_eq!(out.code, 1, "{out:?}");
    // "broker error 1: <remark>" from sends, "answered code 1: <remark>" from admin verbs.
    let remark = format!("1: org.apache.rocketmq.acl.common.AclException: {reason}");
    assert!(out.stderr.contains(&remark), "{remark:?} in {out:?}");
}

#[test]
fn mqctl_signs_and_the_broker_refuses_as_4_9_7() {
    let dir = TempDir::new("acl-mqctl");
    let (broker, _file) = acl_broker(&dir);
    let ns = broker.namesrv.to_string();
    let admin = |args: &[&str]| as_user(&ns, "rocketmqAdmin", "87654321", args);
    admin(&["topic", "create", "--topic", TOPIC, "--queues", "2"]).ok();

    // Flags, then the environment: both sign.
    as_user(
        &ns,
        "RocketMQ",
        "12345678",
        &["produce", "-t", TOPIC, "one"],
    )
    .ok();
    mqctl_env(
        Some(&ns),
        &["produce", "-t", TOPIC, "two"],
        b"",
        &[("MQ_ACCESS_KEY", "RocketMQ"), ("MQ_SECRET_KEY", "12345678")],
    )
    .ok();
    let out = as_user(
        &ns,
        "RocketMQ",
        "12345678",
        &[
            "consume",
            "-t",
            TOPIC,
            "--from",
            "first",
            "--count",
            "2",
            "--timeout",
            "30",
        ],
    )
    .ok();
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");

    // Refusals, with 4.9.7's reasons.
    let unsigned = mqctl(Some(&ns), &["produce", "-t", TOPIC, "x"], b"");
    refused(&unsigned, "No accessKey is configured");
    let wrong = as_user(
        &ns,
        "RocketMQ",
        "not-the-secret",
        &["produce", "-t", TOPIC, "x"],
    );
    refused(&wrong, "Check signature failed for accessKey=RocketMQ");
    let unknown = as_user(&ns, "nobody", "12345678", &["produce", "-t", TOPIC, "x"]);
    refused(&unknown, "No acl config for nobody");
    let denied = as_user(
        &ns,
        "RocketMQ",
        "12345678",
        &["produce", "-t", "Other", "x"],
    );
    refused(&denied, "No default permission for topic:Other");
    let create = as_user(
        &ns,
        "RocketMQ",
        "12345678",
        &["topic", "create", "--topic", "Mine"],
    );
    refused(&create, "Need admin permission for request code=17");

    // getAclConfig: every account, secrets included, so for admins only.
    let get_config = || request(req::GET_BROKER_CLUSTER_ACL_CONFIG, SerializeType::Json, &[]);
    let as_admin = signed_call(
        &broker.addr,
        get_config(),
        Some(("rocketmqAdmin", "87654321")),
    );
    assert_eq!(as_admin.code, resp::SUCCESS, "{as_admin:?}");
    let body: serde_json::Value = serde_json::from_slice(&as_admin.body).expect("JSON body");
    let keys: Vec<&str> = body["plainAccessConfigs"]
        .as_array()
        .expect("a list of accounts")
        .iter()
        .filter_map(|a| a["accessKey"].as_str())
        .collect();
    assert_eq!(keys, ["RocketMQ", "rocketmqAdmin"], "{body}");
    assert_eq!(
        body["plainAccessConfigs"][0]["topicPerms"][0],
        "AclTopic=PUB|SUB"
    );
    let as_user = signed_call(&broker.addr, get_config(), Some(("RocketMQ", "12345678")));
    assert_eq!(as_user.code, resp::SYSTEM_ERROR, "{as_user:?}");
    assert!(
        as_user
            .remark
            .as_deref()
            .is_some_and(|r| r.contains("Need admin permission for request code=54")),
        "{as_user:?}"
    );

    // Half a pair of keys is a usage error.
    let half = mqctl_env(
        Some(&ns),
        &["cluster"],
        b"",
        &[("MQ_ACCESS_KEY", "RocketMQ")],
    );
    assert_one_error_line(&half, 2, "secret key");
}

#[test]
fn a_changed_accounts_file_takes_effect_without_a_restart() {
    let dir = TempDir::new("acl-reload");
    let (broker, file) = acl_broker(&dir);
    let ns = broker.namesrv.to_string();
    as_user(
        &ns,
        "rocketmqAdmin",
        "87654321",
        &["topic", "create", "--topic", TOPIC],
    )
    .ok();
    let send = || as_user(&ns, "newcomer", "newsecret", &["produce", "-t", TOPIC, "x"]);
    refused(&send(), "No acl config for newcomer");

    std::fs::write(
        &file,
        accounts(
            "\x20 - accessKey: newcomer\n\
             \x20   secretKey: newsecret\n\
             \x20   defaultTopicPerm: PUB\n",
        ),
    )
    .expect("rewrite the accounts file");
    // The broker looks every second; give it ten.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = send();
        if out.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new account never worked: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn with_acl_off_signed_and_unsigned_requests_both_pass() {
    let broker = TestBroker::start();
    let ns = broker.namesrv.to_string();
    mqctl(Some(&ns), &["topic", "create", "--topic", TOPIC], b"").ok();
    mqctl(Some(&ns), &["produce", "-t", TOPIC, "plain"], b"").ok();
    as_user(
        &ns,
        "anyone00",
        "whatever1",
        &["produce", "-t", TOPIC, "signed"],
    )
    .ok();
}

/// A request to a NameServer or a broker at `addr`, signed by `who`
/// (access key, secret key).
fn signed_call(addr: &str, mut cmd: RemotingCommand, who: Option<(&str, &str)>) -> RemotingCommand {
    if let Some((ak, sk)) = who {
        Credentials::new(ak, sk).sign(&mut cmd);
    }
    async_io::block_on(async { call(&*connect(addr).await, cmd).await })
}

#[test]
fn namesrv_write_codes_need_an_admin_signature_and_reads_stay_open() {
    let acl_dir = TempDir::new("acl-namesrv");
    let file = acl_dir.path().join("namesrv_acl.yml");
    std::fs::write(
        &file,
        "accounts:\n\
         \x20 - accessKey: brokerAdmin\n\
         \x20   secretKey: brokersecret\n\
         \x20   admin: true\n\
         \x20 - accessKey: RocketMQ\n\
         \x20   secretKey: 12345678\n",
    )
    .expect("write the accounts file");
    let path = file.display().to_string();
    // Starting returns once the broker is registered: its registrations,
    // signed with its accessKey and secretKey, pass.
    let d = Standalone::start_with(&[
        "--namesrv-acl-file",
        &path,
        "--accessKey",
        "brokerAdmin",
        "--secretKey",
        "brokersecret",
    ]);
    let put = || {
        request(
            req::PUT_KV_CONFIG,
            SerializeType::Json,
            &[("namespace", "NS"), ("key", "k"), ("value", "v")],
        )
    };
    let refused = |resp: RemotingCommand, reason: &str| {
        assert_eq!(resp.code, resp::SYSTEM_ERROR, "{resp:?}");
        let remark = resp.remark.unwrap_or_default();
        assert!(remark.contains(reason), "{reason:?} in {remark:?}");
    };
    refused(
        signed_call(&d.namesrv, put(), None),
        "No accessKey is configured",
    );
    refused(
        signed_call(&d.namesrv, put(), Some(("RocketMQ", "12345678"))),
        "Need admin permission for request code=100, but accessKey=RocketMQ is not",
    );
    refused(
        signed_call(&d.namesrv, put(), Some(("brokerAdmin", "wrongsecret"))),
        "Check signature failed for accessKey=brokerAdmin",
    );
    let ok = signed_call(&d.namesrv, put(), Some(("brokerAdmin", "brokersecret")));
    assert_eq!(ok.code, resp::SUCCESS, "{ok:?}");
    let unregister = request(
        req::UNREGISTER_BROKER,
        SerializeType::Json,
        &[
            ("brokerName", "broker-a"),
            ("brokerAddr", &d.broker_addr),
            ("clusterName", "DefaultCluster"),
            ("brokerId", "0"),
        ],
    );
    refused(
        signed_call(&d.namesrv, unregister, None),
        "No accessKey is configured",
    );
    // Reads need nothing, as in 4.9.7.
    let get = request(
        req::GET_KV_CONFIG,
        SerializeType::Json,
        &[("namespace", "NS"), ("key", "k")],
    );
    let got = signed_call(&d.namesrv, get, None);
    assert_eq!(got.code, resp::SUCCESS, "{got:?}");
    mqctl(Some(&d.namesrv), &["cluster"], b"").ok();
}
