//! A broker.conf is read as UTF-8 with mqd's own Properties reader: a
//! non-ASCII `brokerName`, written as raw UTF-8 or as `\uXXXX` escapes, is the
//! same name in the NameServer's cluster info (GET_BROKER_CLUSTER_INFO) and in
//! `mqctl cluster`, as text and as JSON.

use mq_protocol::body::ClusterInfo;
use mq_protocol::codes::request as req;

use crate::support::*;

/// The name, as the tests expect to read it back everywhere.
const NAME: &str = "café-東京";

/// Checks the name in the cluster info the NameServer at `namesrv` answers,
/// in both serializations, and in what `mqctl cluster` prints.
fn assert_name_everywhere(namesrv: &str, broker_addr: &str) {
    async_io::block_on(async {
        let client = connect(namesrv).await;
        for ser in BOTH {
            let answer = call_ok(&client, request(req::GET_BROKER_CLUSTER_INFO, ser, &[])).await;
            let text = String::from_utf8(answer.body.clone()).expect("a UTF-8 body");
            assert!(text.contains(NAME), "{ser:?}: {text}");
            let info = ClusterInfo::decode(&answer.body).expect("ClusterInfo body");
            assert_eq!(
                info.broker_addr_table.keys().collect::<Vec<_>>(),
                [NAME],
                "{ser:?}: {text}"
            );
            assert_eq!(
                info.broker_addr_table[NAME].broker_addrs.get(&0),
                Some(&broker_addr.to_owned())
            );
            assert!(
                info.cluster_addr_table["DefaultCluster"].contains(NAME),
                "{ser:?}: {text}"
            );
        }
    });
    let out = mqctl(Some(namesrv), &["cluster"], b"").ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("DefaultCluster"))
        .unwrap_or_else(|| panic!("{out:?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], NAME, "{row}");
    assert_eq!(cells[3], broker_addr, "{row}");
    let out = mqctl(Some(namesrv), &["cluster", "--format", "json"], b"").ok();
    let brokers = out.json_lines();
    assert_eq!(brokers.len(), 1, "{out:?}");
    assert_eq!(brokers[0]["brokerName"], NAME, "{out:?}");
    assert_eq!(brokers[0]["online"], true, "{out:?}");
}

#[test]
fn a_raw_utf8_broker_name_is_the_same_in_mqctl_and_the_nameserver() {
    let dir = TempDir::new("utf8-name");
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, format!("brokerName={NAME}\n")).expect("write broker.conf");
    assert!(
        std::fs::read(&conf)
            .expect("read broker.conf")
            .windows(3)
            .any(|w| w == "東".as_bytes()),
        "written as raw UTF-8"
    );
    let daemon = Standalone::start_with(&["-c", conf.to_str().expect("a UTF-8 path")]);
    assert_name_everywhere(&daemon.namesrv, &daemon.broker_addr);
}

#[test]
fn an_escaped_broker_name_is_the_same_in_mqctl_and_the_nameserver() {
    let dir = TempDir::new("escaped-name");
    let (ns_port, port) = (free_port(), free_broker_port());
    let namesrv = local(ns_port).to_string();
    let _namesrv = MqdCommand::new(
        "mqd namesrv",
        &["namesrv", "--listen", &namesrv],
        &dir.path().join("namesrv.log"),
    )
    .ready_at(local(ns_port))
    .start();
    let conf = dir.path().join("broker.conf");
    let settings: String = SMALL_STORE
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(
        &conf,
        format!(
            "# café-東京, as Java's native2ascii writes it\n\
             brokerName=caf\\u00e9-\\u6771\\u4eac\n\
             namesrvAddr={namesrv}\n\
             brokerIP1=127.0.0.1\n\
             listenPort={port}\n\
             storePathRootDir={}\n\
             {settings}",
            dir.path().join("data").display()
        ),
    )
    .expect("write broker.conf");
    let _broker = MqdCommand::new(
        "mqd broker",
        &["broker", "-c", conf.to_str().expect("a UTF-8 path")],
        &dir.path().join("broker.log"),
    )
    .ready_at(local(port))
    .start();
    async_io::block_on(wait_registered(&namesrv));
    assert_name_everywhere(&namesrv, &local(port).to_string());
}
