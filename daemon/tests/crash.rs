//! Crash and corruption: a child process appending with SYNC_FLUSH is killed
//! with SIGKILL at random moments; bytes are flipped in the CommitLog's tail and
//! in a ConsumeQueue. Every acknowledged message must read back intact, and
//! nothing past the recovered end may be garbage.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{decode, message, read_queue, small_config, TempDir};
use mq_daemon::store::{Durability, FlushDiskType, MessageStore, StoreConfig};

const CHILD_ENV: &str = "MQ_CRASH_CHILD_DIR";
const QUEUES: i32 = 4;

fn crash_config(root: &Path) -> StoreConfig {
    let mut config = small_config(root);
    config.flush_disk_type = FlushDiskType::SyncFlush;
    config
}

/// The body of message `n`: its number and a length that varies with it, so
/// records end at every distance from a segment boundary.
fn body_of(n: u64) -> Vec<u8> {
    let mut body = format!("msg-{n}-").into_bytes();
    body.resize(
        body.len() + (n as usize * 131) % 1500,
        b'a' + (n % 26) as u8,
    );
    body
}

fn parse_body(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let n: u64 = text.strip_prefix("msg-")?.split('-').next()?.parse().ok()?;
    (body_of(n) == body).then_some(n)
}

/// The child: when run with `MQ_CRASH_CHILD_DIR`, appends until killed and prints
/// `ACK <n> <queue> <queue offset>` after each acknowledged message. Without the
/// variable (a normal test run) it does nothing.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let first: u64 = std::env::var("MQ_CRASH_FIRST").unwrap().parse().unwrap();
    let store = MessageStore::open(crash_config(Path::new(&dir))).unwrap();
    // Four appenders at once, so group commit serves several waiters per flush.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut n = first + t;
                loop {
                    let body = body_of(n);
                    let queue = (n % QUEUES as u64) as i32;
                    let keys = format!("KEYS\u{1}k{n}");
                    let stored = store
                        .put_blocking(&[message("Crash", queue, &body, &keys)], true)
                        .unwrap();
                    assert_eq!(stored.durability, Durability::Done);
                    println!("ACK {n} {queue} {}", stored.append.messages[0].1);
                    n += 4;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// A cheap random number (no crate): the clock's nanoseconds, mixed.
fn random(bound: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15 ^ (std::process::id() as u64) << 17;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % bound
}

/// Runs the child until it has acknowledged `acks` messages plus a random
/// extra moment, SIGKILLs it, and returns what it acknowledged.
fn run_and_kill(dir: &Path, first: u64, acks: usize) -> Vec<(u64, i32, i64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .env("MQ_CRASH_FIRST", first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                let ack = (
                    parts[0].parse().unwrap(),
                    parts[1].parse().unwrap(),
                    parts[2].parse().unwrap(),
                );
                if tx.send(ack).is_err() {
                    break;
                }
            }
        }
    });
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < acks {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ack) => acked.push(ack),
            Err(_) => panic!("the child acknowledged only {} messages", acked.len()),
        }
    }
    // Kill at a random moment after that, mid-append more often than not.
    std::thread::sleep(Duration::from_micros(random(20_000)));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    acked.extend(rx.try_iter());
    acked
}

/// Reopens the store and checks every acknowledged message and every stored one.
fn verify(dir: &Path, acked: &HashMap<u64, (i32, i64)>) -> u64 {
    let store = MessageStore::open(crash_config(dir)).unwrap();
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let mut stored = HashMap::new();
    for queue in 0..QUEUES {
        let messages = read_queue(&store, "Crash", queue);
        // Offsets are contiguous from 0: nothing lost in the middle.
        for (i, (offset, _)) in messages.iter().enumerate() {
            assert_eq!(*offset, i as i64, "queue {queue} has a hole");
        }
        for (offset, body) in messages {
            let n =
                parse_body(&body).unwrap_or_else(|| panic!("garbage in queue {queue} at {offset}"));
            assert!(
                stored.insert(n, (queue, offset)).is_none(),
                "message {n} stored twice"
            );
        }
    }
    for (n, place) in acked {
        assert_eq!(
            stored.get(n),
            Some(place),
            "acknowledged message {n} is missing or moved"
        );
    }
    // Every record in the log decodes with a valid CRC, up to the recovered end.
    let (mut offset, end) = store.commit_log_range();
    let mut count = 0;
    while offset < end {
        match store.look_message(offset) {
            Some(record) => {
                let msg = decode(&record);
                assert!(parse_body(msg.body).is_some());
                offset += record.len() as i64;
                count += 1;
            }
            // A blank marker: next segment.
            None => offset = (offset / (64 * 1024) + 1) * 64 * 1024,
        }
    }
    assert_eq!(count, stored.len(), "the log and the queues disagree");
    // The key index was rebuilt for what recovery re-dispatched.
    if let Some(n) = acked.keys().max() {
        let found = store.query_by_key("Crash", &format!("k{n}"), 4, 0, i64::MAX);
        assert_eq!(found.len(), 1, "key of the last acknowledged message");
    }
    store.close().unwrap();
    stored.keys().max().map_or(0, |n| n + 1)
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let dir = TempDir::new("crash");
    let mut acked = HashMap::new();
    let mut next = 0u64;
    for round in 0..5 {
        let acks = 50 + random(400) as usize;
        for (n, queue, offset) in run_and_kill(dir.path(), next, acks) {
            acked.insert(n, (queue, offset));
        }
        assert!(
            dir.path().join("abort").exists(),
            "round {round}: the child left no abort marker"
        );
        let stored = verify(dir.path(), &acked);
        eprintln!(
            "round {round}: {} acknowledged so far, all intact; next number {stored}",
            acked.len()
        );
        next = stored.max(next) + 4;
    }
    assert!(acked.len() >= 250);
}

#[test]
fn flipped_bytes_in_the_log_tail_and_a_queue_are_cut_and_rebuilt() {
    for crashed in [false, true] {
        let dir = TempDir::new("corrupt");
        let config = small_config(dir.path());
        let store = MessageStore::open(config.clone()).unwrap();
        let mut places = Vec::new();
        for n in 0..200u64 {
            let body = body_of(n);
            let stored = store
                .put_blocking(&[message("Crash", (n % 2) as i32, &body, "")], true)
                .unwrap();
            places.push(stored.append.messages[0]);
        }
        store.close().unwrap();
        drop(store);

        // Flip a byte in the body of message 190: it and everything after go.
        let (phys, _) = places[190];
        let segment = phys / (64 * 1024) * (64 * 1024);
        let path = dir.path().join("commitlog").join(format!("{segment:020}"));
        flip(&path, (phys - segment) as usize + 100);
        // Flip the size field of entry 60 of queue 0 (its second file of 50 entries,
        // which starts at byte 1000 of the queue).
        let cq = dir
            .path()
            .join("consumequeue/Crash/0")
            .join(format!("{:020}", 1000));
        flip(&cq, (60 - 50) * 20 + 9);
        if crashed {
            std::fs::write(dir.path().join("abort"), b"").unwrap();
        }

        let store = MessageStore::open(config).unwrap();
        assert!(store.wait_dispatched(Duration::from_secs(10)));
        let mut count = 0;
        for queue in 0..2 {
            let messages = read_queue(&store, "Crash", queue);
            for (i, (offset, body)) in messages.iter().enumerate() {
                assert_eq!(*offset, i as i64);
                let n = parse_body(body).expect("no garbage");
                assert_eq!(n % 2, queue as u64);
                assert_eq!(n / 2, *offset as u64);
                assert!(n < 190);
            }
            count += messages.len();
        }
        assert_eq!(
            count, 190,
            "crashed={crashed}: messages before the damage are all there"
        );
        // Appends continue at the cut.
        let stored = store
            .put_blocking(&[message("Crash", 0, b"after", "")], true)
            .unwrap();
        assert_eq!(stored.append.messages[0], (phys, 95));
        store.close().unwrap();
    }
}

fn flip(path: &Path, pos: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[pos] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_deleted_consumequeue_directory_is_rebuilt_from_the_log() {
    let dir = TempDir::new("rebuild");
    let config = small_config(dir.path());
    let store = MessageStore::open(config.clone()).unwrap();
    for n in 0..300u64 {
        let body = body_of(n);
        let keys = format!("KEYS\u{1}k{n}");
        store
            .put_blocking(&[message("Crash", (n % 3) as i32, &body, &keys)], true)
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();

    let store = MessageStore::open(config).unwrap();
    let mut total = 0;
    for queue in 0..3 {
        let messages = read_queue(&store, "Crash", queue);
        for (offset, body) in &messages {
            assert_eq!(parse_body(body), Some(*offset as u64 * 3 + queue as u64));
        }
        total += messages.len();
    }
    assert_eq!(total, 300);
    // Appends continue with the rebuilt queue offsets.
    let stored = store
        .put_blocking(&[message("Crash", 0, b"after", "")], true)
        .unwrap();
    assert_eq!(stored.append.messages[0].1, 100);
}

#[test]
fn a_corrupt_record_in_an_old_segment_does_not_stop_a_rebuild() {
    let dir = TempDir::new("oldrot");
    let config = small_config(dir.path());
    let store = MessageStore::open(config.clone()).unwrap();
    let mut places = Vec::new();
    for n in 0..300u64 {
        let body = body_of(n);
        let stored = store
            .put_blocking(&[message("Crash", 0, &body, "")], true)
            .unwrap();
        places.push(stored.append.messages[0].0);
    }
    store.close().unwrap();
    drop(store);
    // Damage the magic code of message 10, in the first segment, which the
    // clean open does not scan; then make the open rebuild every queue.
    let phys = places[10];
    flip(
        &dir.path().join("commitlog").join(format!("{:020}", 0)),
        phys as usize + 4,
    );
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();

    let store = MessageStore::open(config).unwrap();
    let messages = read_queue(&store, "Crash", 0);
    // Messages before the damage, and every message of later segments, are back.
    let numbers: Vec<u64> = messages
        .iter()
        .map(|(_, b)| parse_body(b).unwrap())
        .collect();
    assert_eq!(&numbers[..10], &(0..10).collect::<Vec<_>>()[..]);
    let first_of_second_segment = places.iter().position(|&p| p >= 64 * 1024).unwrap() as u64;
    assert!(numbers.contains(&first_of_second_segment));
    assert!(numbers.contains(&299));
    assert!(!numbers.contains(&10));
}
