//! A full disk, for real: `mqd standalone` on a 64 MiB tmpfs that an unrelated
//! 16 MiB file shares, fed until it refuses. Sends must be refused with
//! SERVICE_NOT_AVAILABLE and a remark that names the disk; every acknowledged
//! message must stay readable; once space is freed sends resume within a
//! second; and only an operator's `cleanFileForciblyEnable` lets retention
//! delete unexpired segments.
//!
//! Mounting a tmpfs needs root (or CAP_SYS_ADMIN); without it these tests fail
//! saying so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::connection::RemotingClient;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::SerializeType;

use crate::support::*;

/// Size of the small file system.
const FS_MIB: u64 = 64;
/// The unrelated file sharing it.
const FILLER_MIB: usize = 16;
/// Body size: with 4 MiB segments a few thousand messages fill the disk.
const BODY: usize = 4096;
const QUEUES: i32 = 4;
const TOPIC: &str = "FullDisk";
/// Store files small enough for the disk: 4 MiB segments as in the report,
/// 300-entry ConsumeQueue files, a small index.
const SMALL_FILES: [&str; 2] = ["--mappedFileSizeCommitLog", "4194304"];

/// A tmpfs of its own, unmounted (lazily) on drop.
struct SmallFs {
    mount: PathBuf,
    /// Removed after the unmount.
    _dir: TempDir,
}

impl SmallFs {
    fn mount(size_mib: u64) -> SmallFs {
        use nix::mount::{mount, MsFlags};
        let dir = TempDir::new("smallfs");
        let point = dir.path().join("fs");
        std::fs::create_dir(&point).expect("create the mount point");
        mount(
            Some("tmpfs"),
            &point,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size_mib}m").as_str()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "mounting a {size_mib} MiB tmpfs at {} needs root or CAP_SYS_ADMIN \
                 (run the tests as root): {e}",
                point.display()
            )
        });
        SmallFs {
            mount: point,
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Detached, so a process still holding files there cannot keep it.
        let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes `mib` MiB of real data (tmpfs counts written pages only).
fn write_filler(path: &Path, mib: usize) {
    let chunk = vec![0xA5u8; 1 << 20];
    let mut data = Vec::with_capacity(mib << 20);
    for _ in 0..mib {
        data.extend_from_slice(&chunk);
    }
    std::fs::write(path, data).expect("write the filler file");
}

/// A message body that carries its id in the first 8 bytes.
fn body(id: usize) -> Vec<u8> {
    let mut body = format!("{id:08}").into_bytes();
    body.resize(BODY, b'.');
    body
}

/// What the filling phase saw.
struct Filled {
    /// Ids of every acknowledged message.
    acked: BTreeSet<usize>,
    /// The first refusal.
    refusal_code: i32,
    refusal_remark: String,
}

/// Sends from 16 concurrent senders until the broker refuses; every sender
/// stops at its first refusal.
async fn fill(client: &Arc<RemotingClient>) -> Filled {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            async move {
                let mut acked = Vec::new();
                loop {
                    let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    assert!(id < 100_000, "a 64 MiB disk never filled");
                    let queue = (id % QUEUES as usize) as i32;
                    let cmd = send_v2(SerializeType::Json, TOPIC, queue, &body(id), "");
                    let response = call(&client, cmd).await;
                    if response.code != resp::SUCCESS {
                        return (acked, Some((response.code, response.remark)));
                    }
                    acked.push(id);
                }
            }
        })
        .collect();
    let mut filled = Filled {
        acked: BTreeSet::new(),
        refusal_code: 0,
        refusal_remark: String::new(),
    };
    for (acked, refused) in concurrently(senders).await {
        filled.acked.extend(acked);
        if let Some((code, remark)) = refused {
            if filled.refusal_code == 0 {
                filled.refusal_code = code;
                filled.refusal_remark = remark.unwrap_or_default();
            }
        }
    }
    filled
}

/// The ids of every message the topic's queues hold, read with plain pulls.
async fn read_ids(client: &RemotingClient) -> BTreeSet<usize> {
    let mut ids = BTreeSet::new();
    for queue in 0..QUEUES {
        let mut offset = 0;
        loop {
            let response = call(
                client,
                Pull::new("disk_reader", TOPIC, queue, offset).command(SerializeType::Json),
            )
            .await;
            if response.code != resp::SUCCESS {
                break;
            }
            for text in bodies(&response.body) {
                ids.insert(text[..8].parse().expect("an id"));
            }
            offset = field_i64(&response, "nextBeginOffset");
        }
    }
    ids
}

async fn min_offset(client: &RemotingClient, queue: i32) -> i64 {
    let queue = queue.to_string();
    let response = call_ok(
        client,
        request(
            req::GET_MIN_OFFSET,
            SerializeType::Json,
            &[("topic", TOPIC), ("queueId", &queue)],
        ),
    )
    .await;
    field_i64(&response, "offset")
}

/// A broker on a full small disk, and what filling it acknowledged.
struct FullBroker {
    mqd: Mqd,
    client: Arc<RemotingClient>,
    filled: Filled,
    filler: PathBuf,
    store: PathBuf,
    _logs: TempDir,
    /// Unmounted last, once mqd has stopped.
    _fs: SmallFs,
}

impl FullBroker {
    /// The refusal must be SERVICE_NOT_AVAILABLE (producers move to another
    /// broker) with a remark naming the disk and its use.
    fn assert_refused_as_full(&self) {
        let filled = &self.filled;
        assert!(
            filled.acked.len() > 1000,
            "the disk took only {} messages",
            filled.acked.len()
        );
        assert_eq!(
            filled.refusal_code,
            resp::SERVICE_NOT_AVAILABLE,
            "{}",
            filled.refusal_remark
        );
        let store = self.store.display().to_string();
        assert!(
            filled.refusal_remark.contains(&store) && filled.refusal_remark.contains("% used"),
            "the remark names the disk and its use: {}",
            filled.refusal_remark
        );
    }
}

fn start_full_broker(extra: &[&str]) -> FullBroker {
    let fs = SmallFs::mount(FS_MIB);
    let filler = fs.path().join("unrelated.bin");
    write_filler(&filler, FILLER_MIB);
    let logs = TempDir::new("diskfull-log");
    let data = fs.path().join("mq");
    let port = free_broker_port();
    let mqd = MqdCommand::standalone(&data, free_port(), port, &logs.path().join("mqd.log"))
        .args(flags(&SMALL_STORE))
        .args(SMALL_FILES)
        .args(extra)
        .start();
    let (client, filled) = async_io::block_on(async {
        let client = connect(&local(port).to_string()).await;
        create_topic(&client, TOPIC, QUEUES).await;
        let filled = fill(&client).await;
        (client, filled)
    });
    FullBroker {
        mqd,
        client,
        filled,
        filler,
        store: data.join("store"),
        _logs: logs,
        _fs: fs,
    }
}

#[test]
fn a_full_disk_refuses_sends_keeps_every_acknowledged_message_and_recovers() {
    let broker = start_full_broker(&[]);
    let filled = &broker.filled;
    broker.assert_refused_as_full();
    assert!(
        filled.refusal_remark.contains("diskSpaceWarningLevelRatio"),
        "{}",
        filled.refusal_remark
    );
    async_io::block_on(async {
        let client: &RemotingClient = &broker.client;
        let missing = |ids: &BTreeSet<usize>| filled.acked.difference(ids).count();
        assert_eq!(missing(&read_ids(client).await), 0, "right after filling");
        // Default retention, for a minute: six rounds at cleanResourceInterval
        // 10 s, each of which sees a full disk. Nothing acknowledged may go.
        let until = Instant::now() + Duration::from_secs(62);
        while Instant::now() < until {
            async_io::Timer::after(Duration::from_secs(10)).await;
            let refused = call(client, send_v2(SerializeType::Json, TOPIC, 0, &body(0), "")).await;
            assert_eq!(
                refused.code,
                resp::SERVICE_NOT_AVAILABLE,
                "{:?}",
                refused.remark
            );
            for queue in 0..QUEUES {
                assert_eq!(
                    min_offset(client, queue).await,
                    0,
                    "queue {queue} lost its head"
                );
            }
        }
        assert_eq!(missing(&read_ids(client).await), 0, "a minute later");

        // Free the space: sends resume within a second (the disk is read
        // every second), without a restart.
        std::fs::remove_file(&broker.filler).expect("remove the filler");
        let freed = Instant::now();
        let resumed = eventually("sends to resume", Duration::from_secs(5), || async {
            let r = call(
                client,
                send_v2(SerializeType::Json, TOPIC, 1, &body(999_999), ""),
            )
            .await;
            (r.code == resp::SUCCESS).then(|| freed.elapsed())
        })
        .await;
        eprintln!(
            "{} acknowledged; refused with {}: {}; sends resumed {resumed:?} after freeing",
            filled.acked.len(),
            filled.refusal_code,
            filled.refusal_remark
        );
        assert!(
            resumed < Duration::from_millis(2500),
            "sends resumed {resumed:?} after space was freed"
        );
        let ids = read_ids(client).await;
        assert_eq!(missing(&ids), 0, "after space was freed");
        assert!(ids.contains(&999_999));
    });
    let log = broker.mqd.log_text();
    assert!(log.contains("refusing sends until space is freed"), "{log}");
    assert!(log.contains("accepting sends"), "{log}");
}

#[test]
fn forced_cleaning_deletes_unread_messages_only_when_turned_on() {
    let broker = start_full_broker(&[
        "--cleanFileForciblyEnable",
        "true",
        "--cleanResourceInterval",
        "500",
    ]);
    broker.assert_refused_as_full();
    async_io::block_on(async {
        let client: &RemotingClient = &broker.client;
        // RocketMQ's behaviour: the oldest unexpired segments go.
        eventually("forced cleaning", Duration::from_secs(30), || async {
            (min_offset(client, 0).await > 0).then_some(())
        })
        .await;
        let ids = read_ids(client).await;
        let lost = broker.filled.acked.difference(&ids).count();
        eprintln!(
            "forced cleaning: {lost} of {} acknowledged messages deleted",
            broker.filled.acked.len()
        );
        assert!(lost > 0, "forced cleaning deleted acknowledged messages");
        // And with the space it freed, sends go on.
        eventually("sends to resume", Duration::from_secs(10), || async {
            let r = call(client, send_v2(SerializeType::Json, TOPIC, 0, &body(0), "")).await;
            (r.code == resp::SUCCESS).then_some(())
        })
        .await;
    });
}

#[test]
fn a_segment_that_does_not_fit_is_refused_as_a_full_disk() {
    // With no percentage limit, the disk fills until a segment cannot be
    // created (ENOSPC), which must read as a full disk too, not SYSTEM_ERROR.
    let broker = start_full_broker(&["--diskSpaceWarningLevelRatio", "100"]);
    let filled = &broker.filled;
    broker.assert_refused_as_full();
    assert!(
        filled.refusal_remark.contains("does not fit")
            || filled.refusal_remark.contains("kept for consume queues"),
        "{}",
        filled.refusal_remark
    );
    eprintln!(
        "{} acknowledged; refused: {}",
        filled.acked.len(),
        filled.refusal_remark
    );
    async_io::block_on(async {
        let client: &RemotingClient = &broker.client;
        let ids = read_ids(client).await;
        assert_eq!(filled.acked.difference(&ids).count(), 0);
        std::fs::remove_file(&broker.filler).expect("remove the filler");
        eventually("sends to resume", Duration::from_secs(5), || async {
            let r = call(client, send_v2(SerializeType::Json, TOPIC, 2, &body(0), "")).await;
            (r.code == resp::SUCCESS).then_some(())
        })
        .await;
    });
}
