//! Master/slave groups of `mqd broker` processes behind `mqd namesrv`
//! processes of their own ([`HaCluster`]), and what replication tests ask of
//! them: runtime info, waiting for a slave to link and to catch up, reading a
//! queue's records byte for byte from one broker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mq::connection::RemotingClient;
use mq_protocol::body::KvTable;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::SerializeType;
use mq_protocol::message::decode_records;

use super::mqd::{flags, local, Mqd, MqdCommand, SMALL_STORE};
use super::ports::{free_broker_port, free_port};
use super::remoting::{call, connect, eventually, request};
use super::requests::{field_i64, Pull};
use super::tempdir::TempDir;

/// One broker process of a group.
pub struct HaBroker {
    /// The process.
    pub mqd: Mqd,
    /// `127.0.0.1:listenPort`.
    pub addr: String,
    /// Its store root.
    pub data: PathBuf,
}

/// A broker name served by a master (id 0) and a SLAVE (id 1).
pub struct HaGroup {
    /// `brokerName`.
    pub name: String,
    /// The master.
    pub master: HaBroker,
    /// The slave.
    pub slave: HaBroker,
}

/// NameServers and broker groups, each a separate `mqd`, in one temporary
/// directory (kept when the test fails, with every daemon's log).
pub struct HaCluster {
    /// Dropped first: brokers unregister while the NameServers still run.
    pub groups: Vec<HaGroup>,
    /// The NameServer processes (held so that they run as long as the cluster).
    pub _namesrvs: Vec<Mqd>,
    /// Their addresses.
    pub namesrv_addrs: Vec<String>,
    /// Dropped last.
    pub dir: TempDir,
}

impl HaCluster {
    /// Starts `namesrv_count` NameServers, then for each name a SYNC_MASTER
    /// and a SLAVE with [`SMALL_STORE`] files and `extra` broker.conf keys
    /// (both brokers), and waits until every slave is linked to its master.
    pub fn start(
        test: &str,
        namesrv_count: usize,
        names: &[&str],
        extra: &[(&str, &str)],
    ) -> HaCluster {
        HaCluster::start_with_role(test, namesrv_count, names, "SYNC_MASTER", extra)
    }

    /// [`start`](Self::start) with masters of `master_role` (ASYNC_MASTER or
    /// SYNC_MASTER).
    pub fn start_with_role(
        test: &str,
        namesrv_count: usize,
        names: &[&str],
        master_role: &str,
        extra: &[(&str, &str)],
    ) -> HaCluster {
        let dir = TempDir::new(test).keep_on_failure();
        let mut namesrvs = Vec::new();
        let mut namesrv_addrs = Vec::new();
        for n in 0..namesrv_count {
            let port = free_port();
            let addr = local(port).to_string();
            namesrvs.push(
                MqdCommand::new(
                    "mqd namesrv",
                    &["namesrv", "--listen", &addr],
                    &dir.path().join(format!("namesrv-{n}.log")),
                )
                .ready_at(local(port))
                .start(),
            );
            namesrv_addrs.push(addr);
        }
        let namesrv = namesrv_addrs.join(";");
        let groups = names
            .iter()
            .map(|name| HaGroup {
                name: (*name).to_owned(),
                master: start_broker(&dir, &namesrv, name, master_role, extra),
                slave: start_broker(&dir, &namesrv, name, "SLAVE", extra),
            })
            .collect::<Vec<_>>();
        let cluster = HaCluster {
            groups,
            _namesrvs: namesrvs,
            namesrv_addrs,
            dir,
        };
        for group in &cluster.groups {
            async_io::block_on(group.wait_linked());
        }
        cluster
    }

    /// Every NameServer, `;`-separated, as clients take them.
    pub fn namesrv(&self) -> String {
        self.namesrv_addrs.join(";")
    }
}

fn start_broker(
    dir: &TempDir,
    namesrv: &str,
    name: &str,
    role: &str,
    extra: &[(&str, &str)],
) -> HaBroker {
    start_broker_at(dir, namesrv, name, role, "127.0.0.1", None, extra)
}

/// Starts one broker of a group on `ip` (in network namespace `netns` if
/// given): a master when `role` is not SLAVE (id 0), else a slave (id 1).
pub fn start_broker_at(
    dir: &TempDir,
    namesrv: &str,
    name: &str,
    role: &str,
    ip: &str,
    netns: Option<&str>,
    extra: &[(&str, &str)],
) -> HaBroker {
    let port = free_broker_port();
    let at = |port: u16| std::net::SocketAddr::new(ip.parse().expect("an IP address"), port);
    let (id, what) = if role == "SLAVE" {
        (1, "slave")
    } else {
        (0, "master")
    };
    let data = dir.path().join(format!("{name}-{what}"));
    let mut settings: Vec<(&str, String)> = vec![
        ("namesrvAddr", namesrv.to_owned()),
        ("brokerClusterName", "HaCluster".to_owned()),
        ("brokerName", name.to_owned()),
        ("brokerId", id.to_string()),
        ("brokerRole", role.to_owned()),
        ("brokerIP1", ip.to_owned()),
        ("listenPort", port.to_string()),
        ("storePathRootDir", data.display().to_string()),
    ];
    settings.extend(SMALL_STORE.iter().map(|(k, v)| (*k, (*v).to_owned())));
    settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut command = MqdCommand::new(
        &format!("mqd broker {name} {what}"),
        &["broker"],
        &dir.path().join(format!("{name}-{what}.log")),
    )
    .args(flags(&pairs))
    .ready_at(at(port));
    if id == 0 {
        command = command.ready_at(at(port + 1));
    }
    if let Some(ns) = netns {
        command = command.netns(ns);
    }
    HaBroker {
        mqd: command.start(),
        addr: at(port).to_string(),
        data,
    }
}

impl HaGroup {
    /// Waits (up to 20 s) until the master counts a linked slave and the
    /// slave says it is linked.
    pub async fn wait_linked(&self) {
        wait_linked(
            &format!("the slave of {} to link to its master", self.name),
            &self.master.addr,
            &self.slave.addr,
        )
        .await
    }

    /// Waits (up to 10 s) until the master counts no slave link (it has
    /// given up on a silent one).
    pub async fn wait_unlinked(&self) {
        let master = connect(&self.master.addr).await;
        eventually(
            &format!("the master of {} to drop its slave link", self.name),
            Duration::from_secs(10),
            || async {
                let info = runtime_info(&master).await?;
                (info.get("haSlaveCount").map(String::as_str) == Some("0")).then_some(())
            },
        )
        .await
    }

    /// Waits (up to `limit`) until the slave's CommitLog ends where the
    /// master's does, and returns that offset.
    pub async fn wait_caught_up(&self, limit: Duration) -> i64 {
        let (master, slave) = (
            connect(&self.master.addr).await,
            connect(&self.slave.addr).await,
        );
        eventually(
            &format!("the slave of {} to catch up", self.name),
            limit,
            || async {
                let m = commit_log_end(&master).await?;
                let s = commit_log_end(&slave).await?;
                (m == s).then_some(m)
            },
        )
        .await
    }
}

/// Waits (up to 20 s, `what` naming the wait) until the master at
/// `master_addr` counts a slave and the slave at `slave_addr` says it is
/// linked.
pub async fn wait_linked(what: &str, master_addr: &str, slave_addr: &str) {
    let (master, slave) = (connect(master_addr).await, connect(slave_addr).await);
    eventually(what, Duration::from_secs(20), || async {
        let m = runtime_info(&master).await?;
        let s = runtime_info(&slave).await?;
        let linked = m.get("haSlaveCount").is_some_and(|n| n != "0")
            && s.get("haConnected").is_some_and(|c| c == "true");
        linked.then_some(())
    })
    .await
}

/// GET_BROKER_RUNTIME_INFO as a map (`None` if the broker does not answer).
pub async fn runtime_info(client: &RemotingClient) -> Option<BTreeMap<String, String>> {
    let answer = client
        .invoke(
            request(req::GET_BROKER_RUNTIME_INFO, SerializeType::Json, &[]),
            Duration::from_secs(3),
        )
        .await
        .ok()?;
    (answer.code == resp::SUCCESS).then_some(())?;
    Some(
        KvTable::decode(&answer.body)
            .ok()?
            .table
            .into_iter()
            .collect(),
    )
}

/// A broker's CommitLog end, from its runtime info.
pub async fn commit_log_end(client: &RemotingClient) -> Option<i64> {
    runtime_info(client)
        .await?
        .get("commitLogMaxOffset")?
        .parse()
        .ok()
}

/// One stored record as a pull returns it: where it is, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Queue offset.
    pub queue_offset: i64,
    /// CommitLog offset.
    pub phys: i64,
    /// The record, byte for byte as stored.
    pub bytes: Vec<u8>,
}

/// Every record of `topic`'s queue `queue_id` on the broker behind `client`,
/// from offset 0 to the queue's end, as stored (raw pulls; the group name
/// commits nothing).
pub async fn queue_records(client: &RemotingClient, topic: &str, queue_id: i32) -> Vec<RawRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let pull = Pull::new("ha_test_reader", topic, queue_id, offset);
        let answer = call(client, pull.command(SerializeType::Json)).await;
        if answer.code != resp::SUCCESS {
            return out;
        }
        let records = decode_records(&answer.body, true).expect("well-formed records");
        let mut at = 0;
        for record in &records {
            let len = usize::try_from(i32::from_be_bytes(
                answer.body[at..at + 4].try_into().expect("4 bytes"),
            ))
            .expect("a record size");
            out.push(RawRecord {
                queue_offset: record.queue_offset,
                phys: record.physical_offset,
                bytes: answer.body[at..at + len].to_vec(),
            });
            at += len;
        }
        offset = field_i64(&answer, "nextBeginOffset");
    }
}
