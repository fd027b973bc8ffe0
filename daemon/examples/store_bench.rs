//! Store benchmark: append throughput of the CommitLog against the raw sequential
//! write bandwidth of the same disk.
//!
//! ```text
//! cargo run --release -p mq-daemon --example store_bench [-- --quick] [-- --dir PATH]
//! ```
//!
//! Cases: ASYNC_FLUSH appends of 128 B, 1 KiB and 4 KiB bodies from one appender,
//! and SYNC_FLUSH appends of 1 KiB bodies from 64 concurrent appenders. Each case
//! ends with a flush, so its bytes are on disk like the raw run's. The raw run
//! writes the same number of bytes with plain `write` (1 MiB at a time) and one
//! final `fsync`, once before and once after the store's run; the faster counts. MB are 10^6 bytes of stored records (headers included), the
//! bytes that reach the disk in both runs. One line per case:
//!
//! `store_bench case=<name> msgs_per_s=<n> mb_per_s=<n> raw_mb_per_s=<n> ratio=<mb_per_s/raw_mb_per_s>`
//!
//! A SYNC_FLUSH case also measures what the disk gives to synchronous writes:
//! 64 KiB `write`s to a file opened with `O_DSYNC`, as `dd bs=64k
//! oflag=dsync` does, before and after the store's run (the faster counts),
//! and adds `dsync_mb_per_s=<n> dsync_ratio=<mb_per_s/dsync_mb_per_s>`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_daemon::store::{FlushDiskType, MessageStore, PutMessage, StoreConfig};

const TOPIC: &str = "BenchTopic";
const PROPERTIES: &str = "TAGS\u{1}TagA\u{2}WAIT\u{1}true";

struct Case {
    name: &'static str,
    body: usize,
    flush: FlushDiskType,
    appenders: usize,
    messages: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/store-bench"));
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!(
            "usage: store_bench [--quick] [--dir PATH]  (PATH defaults to target/store-bench)"
        );
        return;
    }
    let scale = if quick { 1 } else { 6 };
    let cases = [
        Case {
            name: "async-128",
            body: 128,
            flush: FlushDiskType::AsyncFlush,
            appenders: 1,
            messages: 1_000_000 * scale,
        },
        Case {
            name: "async-1k",
            body: 1024,
            flush: FlushDiskType::AsyncFlush,
            appenders: 1,
            messages: 400_000 * scale,
        },
        Case {
            name: "async-4k",
            body: 4096,
            flush: FlushDiskType::AsyncFlush,
            appenders: 1,
            messages: 100_000 * scale,
        },
        Case {
            name: "sync-1k",
            body: 1024,
            flush: FlushDiskType::SyncFlush,
            appenders: 64,
            messages: 100_000 * scale,
        },
    ];
    let no_raw = args.iter().any(|a| a == "--no-raw");
    let only = args
        .iter()
        .position(|a| a == "--case")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for case in cases
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == c.name))
    {
        let work = dir.join(case.name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("create bench directory");
        // The disk's figure is the better of a plain-write run before and one
        // after the store's run: whichever comes second may be slowed by the
        // other's writeback, and the disk should not be undersold.
        let messages = case.messages / case.appenders * case.appenders;
        let expected = messages as u64 * record_len(case.body);
        let raw_before = (!no_raw).then(|| raw_write(&work.join("raw"), expected));
        let (bytes, elapsed) = run_case(case, &work);
        assert_eq!(bytes, expected, "record size estimate");
        let raw_after = (!no_raw).then(|| raw_write(&work.join("raw"), bytes));
        let raw_elapsed = raw_before.zip(raw_after).map(|(a, b)| a.min(b));
        let dsync_mb_per_s = (case.flush == FlushDiskType::SyncFlush && !no_raw).then(|| {
            let path = work.join("dsync");
            dsync_write_mb_per_s(&path, bytes).max(dsync_write_mb_per_s(&path, bytes))
        });
        let _ = std::fs::remove_dir_all(&work);
        let secs = elapsed.as_secs_f64();
        let mb_per_s = bytes as f64 / 1e6 / secs;
        let raw_mb_per_s =
            raw_elapsed.map_or(f64::NAN, |raw| bytes as f64 / 1e6 / raw.as_secs_f64());
        let dsync = dsync_mb_per_s.map_or(String::new(), |d| {
            format!(" dsync_mb_per_s={d:.1} dsync_ratio={:.2}", mb_per_s / d)
        });
        println!(
            "store_bench case={} msgs_per_s={:.0} mb_per_s={:.1} raw_mb_per_s={:.1} ratio={:.2}{dsync}",
            case.name,
            messages as f64 / secs,
            mb_per_s,
            raw_mb_per_s,
            mb_per_s / raw_mb_per_s
        );
    }
}

/// Appends the case's messages and flushes; returns stored bytes and the time taken.
fn run_case(case: &Case, dir: &Path) -> (u64, Duration) {
    let mut config = StoreConfig::new(dir.join("store"));
    config.flush_disk_type = case.flush;
    // The benchmark measures appends; the key index is measured elsewhere.
    config.message_index_enable = false;
    let store = MessageStore::open(config).expect("open store");
    let body = vec![b'x'; case.body];
    let properties = PROPERTIES;
    let born: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let per_appender = case.messages / case.appenders;
    let started = Instant::now();
    let bytes = if case.appenders == 1 {
        let mut bytes = 0u64;
        for i in 0..per_appender {
            let msg = message(&body, properties, born, i);
            let stored = store.put_blocking(&[msg], true).expect("append");
            bytes += stored.append.wrote_bytes as u64;
        }
        bytes
    } else {
        // Concurrent appenders are tasks on a small executor, as the broker's
        // connections will be.
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, shutdown) = async_channel::unbounded::<()>();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ex = ex.clone();
                let shutdown = shutdown.clone();
                std::thread::spawn(move || async_io::block_on(ex.run(shutdown.recv())))
            })
            .collect();
        let tasks: Vec<_> = (0..case.appenders)
            .map(|_| {
                let store = store.clone();
                let body = body.clone();
                ex.spawn(async move {
                    let mut bytes = 0u64;
                    for i in 0..per_appender {
                        let msg = message(&body, properties, born, i);
                        let stored = store.put(&[msg], true).await.expect("append");
                        assert_eq!(stored.durability, mq_daemon::store::Durability::Done);
                        bytes += stored.append.wrote_bytes as u64;
                    }
                    bytes
                })
            })
            .collect();
        let bytes = async_io::block_on(async {
            let mut total = 0;
            for t in tasks {
                total += t.await;
            }
            total
        });
        drop(stop);
        for t in threads {
            let _ = t.join();
        }
        bytes
    };
    store.close().expect("close store");
    (bytes, started.elapsed())
}

/// Length of one stored record of the benchmark's messages.
fn record_len(body: usize) -> u64 {
    (91 + body + TOPIC.len() + PROPERTIES.len()) as u64
}

fn message<'a>(body: &'a [u8], properties: &'a str, born: SocketAddr, i: usize) -> PutMessage<'a> {
    PutMessage {
        topic: TOPIC,
        queue_id: (i % 8) as i32,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: born,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        properties,
    }
}

/// MB/s of 64 KiB `write`s to a new file opened with `O_DSYNC` (each returns
/// once its data is on disk), up to `bytes` or 2 s, whichever comes first.
fn dsync_write_mb_per_s(path: &Path, bytes: u64) -> f64 {
    use std::os::unix::fs::OpenOptionsExt;
    let chunk = vec![b'x'; 64 << 10];
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::fcntl::OFlag::O_DSYNC.bits())
        .open(path)
        .expect("create dsync file");
    let started = Instant::now();
    let mut written = 0u64;
    while written < bytes && started.elapsed() < Duration::from_secs(2) {
        file.write_all(&chunk).expect("dsync write");
        written += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    drop(file);
    let _ = std::fs::remove_file(path);
    written as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Writes `bytes` sequentially with `write` and one final `fsync`.
fn raw_write(path: &Path, bytes: u64) -> Duration {
    let chunk = vec![b'x'; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(path).expect("create raw file");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).expect("raw write");
        left -= n as u64;
    }
    file.sync_all().expect("raw fsync");
    let elapsed = started.elapsed();
    drop(file);
    let _ = std::fs::remove_file(path);
    elapsed
}
