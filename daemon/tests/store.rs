//! The store through its public API: appends, reads, boundaries, batches,
//! concurrency, lookups, retention, flush modes and failures.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{decode, message, read_queue, small_config, TempDir};
use mq_daemon::store::{Durability, FlushDiskType, GetStatus, MessageStore, StoreError};
use mq_protocol::properties::java_string_hash;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn appended_message_reads_back_byte_for_byte() {
    let dir = TempDir::new("roundtrip");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let props = "KEYS\u{1}order-1\u{2}TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}ABCDEF";
    let stored = store
        .put_blocking(&[message("TopicTest", 2, b"hello", props)], true)
        .unwrap();
    assert_eq!(stored.durability, Durability::Done);
    assert_eq!(stored.append.messages, vec![(0, 0)]);
    assert!(store.wait_dispatched(WAIT));

    let got = store.get_messages("TopicTest", 2, 0, 32, usize::MAX, &|_| true);
    assert_eq!(got.status, GetStatus::Found);
    assert_eq!(
        (got.min_offset, got.max_offset, got.next_begin_offset),
        (0, 1, 1)
    );
    let msg = decode(&got.messages[0]);
    assert_eq!(msg.body, b"hello");
    assert_eq!(msg.topic, "TopicTest");
    assert_eq!(msg.queue_id, 2);
    assert_eq!(msg.properties, props);
    assert_eq!(msg.physical_offset, 0);
    assert_eq!(msg.store_timestamp, stored.append.store_timestamp);
    assert_eq!(msg.born_host, common::born());
    assert_eq!(msg.store_host, store.config().store_host);
    // The same bytes by physical offset (VIEW_MESSAGE_BY_ID).
    assert_eq!(&*store.look_message(0).unwrap(), &*got.messages[0]);

    // Status codes at the queue's edges.
    assert_eq!(
        store
            .get_messages("TopicTest", 2, 1, 32, usize::MAX, &|_| true)
            .status,
        GetStatus::OffsetOverflowOne
    );
    assert_eq!(
        store
            .get_messages("TopicTest", 2, 5, 32, usize::MAX, &|_| true)
            .status,
        GetStatus::OffsetOverflowBadly
    );
    assert_eq!(
        store
            .get_messages("TopicTest", 7, 0, 32, usize::MAX, &|_| true)
            .status,
        GetStatus::NoMatchedLogicQueue
    );
}

#[test]
fn messages_cross_segment_boundaries_with_blank_markers() {
    let dir = TempDir::new("boundaries");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    // Bodies of varying size so records end at every kind of distance from a
    // segment's end.
    let mut expected = Vec::new();
    for i in 0..600usize {
        let body = vec![(i % 251) as u8; 100 + (i * 37) % 900];
        store
            .put_blocking(&[message("Bounds", 0, &body, "")], true)
            .unwrap();
        expected.push(body);
    }
    assert!(store.wait_dispatched(WAIT));
    let (min, max) = store.commit_log_range();
    assert_eq!(min, 0);
    assert!(max > 5 * 64 * 1024, "several segments were used");
    let bodies: Vec<Vec<u8>> = read_queue(&store, "Bounds", 0)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(bodies, expected);

    // Reopen cleanly: the same data, appends continue where they stopped.
    store.close().unwrap();
    drop(store);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.commit_log_range().1, max);
    let next = store
        .put_blocking(&[message("Bounds", 0, b"after", "")], true)
        .unwrap();
    assert_eq!(next.append.messages[0].1, 600);
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(read_queue(&store, "Bounds", 0).len(), 601);
}

#[test]
fn a_message_larger_than_a_segment_is_refused() {
    let dir = TempDir::new("too-large");
    let mut config = small_config(dir.path());
    config.max_message_size = 1024;
    let store = MessageStore::open(config).unwrap();
    let body = vec![0u8; 2000];
    let err = store
        .put_blocking(&[message("T", 0, &body, "")], true)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MessageTooLarge {
                size: 2000,
                limit: 1024
            }
        ),
        "{err}"
    );
    let long_topic = "t".repeat(200);
    assert!(matches!(
        store.put_blocking(&[message(&long_topic, 0, b"x", "")], true),
        Err(StoreError::Encode(_))
    ));
    // Nothing half-written: the next append lands at 0.
    let ok = store
        .put_blocking(&[message("T", 0, b"fine", "")], true)
        .unwrap();
    assert_eq!(ok.append.wrote_offset, 0);
}

#[test]
fn a_batch_is_one_append_with_consecutive_offsets() {
    let dir = TempDir::new("batch");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store
        .put_blocking(&[message("Batch", 1, b"first", "")], true)
        .unwrap();
    let bodies: Vec<Vec<u8>> = (0..10).map(|i| format!("batch-{i}").into_bytes()).collect();
    let batch: Vec<_> = bodies.iter().map(|b| message("Batch", 1, b, "")).collect();
    let stored = store.put_blocking(&batch, true).unwrap();
    let queue_offsets: Vec<i64> = stored.append.messages.iter().map(|m| m.1).collect();
    assert_eq!(queue_offsets, (1..=10).collect::<Vec<_>>());
    // Physical offsets are back to back.
    for pair in stored.append.messages.windows(2) {
        let len = store.look_message(pair[0].0).unwrap().len() as i64;
        assert_eq!(pair[1].0, pair[0].0 + len);
    }
    assert!(store.wait_dispatched(WAIT));
    let read: Vec<Vec<u8>> = read_queue(&store, "Batch", 1)
        .into_iter()
        .skip(1)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(read, bodies);
    assert!(matches!(
        store.put_blocking(&[], true),
        Err(StoreError::EmptyBatch)
    ));
}

#[test]
fn concurrent_appenders_get_unique_contiguous_offsets() {
    let dir = TempDir::new("concurrent");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let body = format!("{t}-{i}");
                    store
                        .put_blocking(&[message("Conc", i % 3, body.as_bytes(), "")], true)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(store.wait_dispatched(WAIT));
    let mut seen = HashMap::new();
    for q in 0..3 {
        let msgs = read_queue(&store, "Conc", q);
        let offsets: Vec<i64> = msgs.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "queue {q}"
        );
        for (_, body) in msgs {
            assert!(seen.insert(body, q).is_none(), "a message stored twice");
        }
    }
    assert_eq!(seen.len(), 8 * 300);
    // Each thread's messages to one queue keep the thread's order.
    for t in 0..8 {
        for q in 0..3 {
            let mine: Vec<i32> = read_queue(&store, "Conc", q)
                .into_iter()
                .filter_map(|(_, b)| {
                    let s = String::from_utf8(b).unwrap();
                    let (tt, i) = s.split_once('-').unwrap();
                    (tt == t.to_string()).then(|| i.parse().unwrap())
                })
                .collect();
            let mut sorted = mine.clone();
            sorted.sort();
            assert_eq!(mine, sorted);
        }
    }
}

#[test]
fn tag_filter_uses_the_tag_hash() {
    let dir = TempDir::new("tags");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    for (i, tag) in ["TagA", "TagB", "TagC", "TagA"].iter().enumerate() {
        let props = format!("TAGS\u{1}{tag}");
        store
            .put_blocking(
                &[message("Tags", 0, format!("{i}").as_bytes(), &props)],
                true,
            )
            .unwrap();
    }
    assert!(store.wait_dispatched(WAIT));
    let a = i64::from(java_string_hash("TagA"));
    let got = store.get_messages("Tags", 0, 0, 32, usize::MAX, &|code| code == a);
    let bodies: Vec<&[u8]> = got
        .messages
        .iter()
        .map(|m| decode(m).body)
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(bodies, vec![&b"0"[..], &b"3"[..]]);
    assert_eq!(got.next_begin_offset, 4);
    let none = store.get_messages("Tags", 0, 0, 32, usize::MAX, &|_| false);
    assert_eq!(none.status, GetStatus::NoMatchedMessage);
    assert_eq!(none.next_begin_offset, 4);
}

#[test]
fn offset_by_time_and_earliest_time() {
    let dir = TempDir::new("bytime");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let mut times = Vec::new();
    for i in 0..5 {
        let stored = store
            .put_blocking(&[message("Time", 0, format!("{i}").as_bytes(), "")], true)
            .unwrap();
        times.push(stored.append.store_timestamp);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(store.offset_by_time("Time", 0, times[0] - 1000), 0);
    assert_eq!(store.offset_by_time("Time", 0, times[2]), 2);
    assert_eq!(store.offset_by_time("Time", 0, times[2] + 1), 3);
    assert_eq!(store.offset_by_time("Time", 0, times[4] + 1000), 5);
    assert_eq!(store.earliest_message_time("Time", 0), Some(times[0]));
    assert_eq!(store.message_store_time("Time", 0, 3), Some(times[3]));
}

#[test]
fn keys_and_unique_keys_are_indexed() {
    let dir = TempDir::new("index");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    for i in 0..300 {
        let props = format!(
            "KEYS\u{1}order-{i} user-{}\u{2}UNIQ_KEY\u{1}U{i:08}",
            i % 10
        );
        store
            .put_blocking(
                &[message("Idx", 0, format!("{i}").as_bytes(), &props)],
                true,
            )
            .unwrap();
    }
    store
        .put_blocking(&[message("Other", 0, b"x", "KEYS\u{1}order-7")], true)
        .unwrap();
    assert!(store.wait_dispatched(WAIT));
    let found = store.query_by_key("Idx", "order-7", 32, 0, i64::MAX);
    assert_eq!(found.len(), 1);
    assert_eq!(decode(&found[0]).body, b"7");
    let found = store.query_by_key("Idx", "U00000123", 32, 0, i64::MAX);
    assert_eq!(decode(&found[0]).body, b"123");
    // 30 messages share user-3; the limit holds and the newest come first.
    let found = store.query_by_key("Idx", "user-3", 5, 0, i64::MAX);
    let bodies: Vec<String> = found
        .iter()
        .map(|r| String::from_utf8(decode(r).body.to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, vec!["293", "283", "273", "263", "253"]);
    assert!(store
        .query_by_key("Idx", "nope", 32, 0, i64::MAX)
        .is_empty());
    assert!(store.query_by_key("Idx", "order-7", 32, 0, 1000).is_empty());
}

#[test]
fn retention_deletes_old_segments_and_advances_queues() {
    let dir = TempDir::new("retention");
    let mut config = small_config(dir.path());
    config.file_reserved_time = Duration::from_secs(0);
    config.delete_file_batch_max = 100;
    let store = MessageStore::open(config).unwrap();
    let body = vec![7u8; 1000];
    for _ in 0..400 {
        store
            .put_blocking(&[message("Old", 0, &body, "KEYS\u{1}k")], true)
            .unwrap();
    }
    assert!(store.wait_dispatched(WAIT));
    // Flushes happen in the background and retention only deletes flushed
    // segments, so rounds may delete a few at a time until the flusher is done.
    let trimmed = wait_until(|| {
        let _ = store.delete_expired_now();
        let (min, max) = store.commit_log_range();
        max - min <= 2 * 64 * 1024
    });
    let (min, max) = store.commit_log_range();
    assert!(
        trimmed,
        "all but the last segment or two are gone: {min}..{max}"
    );
    let min_offset = store.min_offset("Old", 0);
    assert!(min_offset > 0);
    let got = store.get_messages("Old", 0, 0, 32, usize::MAX, &|_| true);
    assert_eq!(got.status, GetStatus::OffsetTooSmall);
    assert_eq!(got.next_begin_offset, min_offset);
    let remaining = read_queue(&store, "Old", 0);
    assert_eq!(remaining.first().unwrap().0, min_offset);
    assert_eq!(remaining.last().unwrap().0, 399);
    // Appends keep working after retention.
    store
        .put_blocking(&[message("Old", 0, b"new", "")], true)
        .unwrap();
}

#[test]
fn sync_flush_acknowledges_after_the_flush() {
    let dir = TempDir::new("syncflush");
    let mut config = small_config(dir.path());
    config.flush_disk_type = FlushDiskType::SyncFlush;
    let store = MessageStore::open(config).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let body = format!("{t}-{i}");
                    let stored = store
                        .put_blocking(&[message("Sync", 0, body.as_bytes(), "")], true)
                        .unwrap();
                    assert_eq!(stored.durability, Durability::Done);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(read_queue(&store, "Sync", 0).len(), 800);
}

#[test]
fn a_full_disk_refuses_appends_and_keeps_reads() {
    let dir = TempDir::new("diskfull");
    let store = reopened_on_a_full_disk(&dir, 1, false);
    assert!(store.is_disk_full());
    let err = store
        .put_blocking(&[message("Unread", 0, b"after", "")], true)
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("is full") && text.contains("% used"),
        "{text}"
    );
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert_eq!(read_queue(&store, "Unread", 0).len(), 1);
}

/// Fills a store with `count` 1 KB messages of topic `Unread`, closes it (so
/// everything is dispatched and flushed) and reopens it with every disk ratio at 0 %, so that any disk
/// counts as full, and `force` as `cleanFileForciblyEnable`.
fn reopened_on_a_full_disk(
    dir: &TempDir,
    count: usize,
    force: bool,
) -> std::sync::Arc<MessageStore> {
    let mut config = small_config(dir.path());
    let store = MessageStore::open(config.clone()).unwrap();
    let body = vec![7u8; 1000];
    for _ in 0..count {
        store
            .put_blocking(&[message("Unread", 0, &body, "")], true)
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    config.disk_max_used_space_ratio = 0;
    config.disk_space_clean_forcibly_ratio = 0;
    config.disk_space_warning_level_ratio = 0;
    config.clean_file_forcibly_enable = force;
    config.delete_file_batch_max = 100;
    MessageStore::open(config).unwrap()
}

#[test]
fn a_full_disk_never_deletes_unexpired_segments_by_default() {
    let dir = TempDir::new("keepunread");
    let store = reopened_on_a_full_disk(&dir, 400, false);
    assert!(store.is_disk_full());
    let before = store.commit_log_range();
    assert!(before.1 > 4 * 64 * 1024, "several segments: {before:?}");
    for _ in 0..5 {
        assert_eq!(store.delete_expired_now().unwrap(), 0);
    }
    assert_eq!(store.commit_log_range(), before);
    assert_eq!(store.min_offset("Unread", 0), 0);
    assert_eq!(read_queue(&store, "Unread", 0).len(), 400);
}

#[test]
fn forced_cleaning_deletes_unexpired_segments_when_the_operator_asks() {
    let dir = TempDir::new("forceclean");
    let store = reopened_on_a_full_disk(&dir, 400, true);
    assert!(wait_until(|| {
        let _ = store.delete_expired_now();
        store.min_offset("Unread", 0) > 0
    }));
    // All but the segment being written may go; the newest messages stay.
    let remaining = read_queue(&store, "Unread", 0);
    assert!(remaining.len() < 400, "{}", remaining.len());
    assert_eq!(remaining.last().unwrap().0, 399);
}

#[test]
fn an_io_error_creating_a_segment_is_returned_and_reads_keep_working() {
    let dir = TempDir::new("ioerror");
    let config = small_config(dir.path());
    let store = MessageStore::open(config).unwrap();
    // Squat the second segment's name with a directory, so it cannot be created.
    let blocker = dir
        .path()
        .join("commitlog")
        .join(format!("{:020}", 64 * 1024));
    std::fs::create_dir_all(&blocker).unwrap();
    let body = vec![1u8; 1000];
    let mut stored = 0;
    let err = loop {
        match store.put_blocking(&[message("Io", 0, &body, "")], true) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000, "the second segment was never needed");
    };
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(read_queue(&store, "Io", 0).len(), stored);
    // Once the obstacle is gone, appends continue.
    std::fs::remove_dir(&blocker).unwrap();
    store
        .put_blocking(&[message("Io", 0, &body, "")], true)
        .unwrap();
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(read_queue(&store, "Io", 0).len(), stored + 1);
}

#[test]
fn a_store_cannot_be_opened_twice() {
    let dir = TempDir::new("lock");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let second = MessageStore::open(small_config(dir.path()));
    assert!(matches!(second, Err(StoreError::Locked { .. })));
    store.close().unwrap();
    drop(store);
    MessageStore::open(small_config(dir.path())).unwrap();
}

#[test]
fn a_clean_close_leaves_no_abort_marker_and_reopens_without_rescan() {
    let dir = TempDir::new("clean");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert!(dir.path().join("abort").exists());
    for i in 0..100 {
        store
            .put_blocking(&[message("Clean", 0, format!("{i}").as_bytes(), "")], true)
            .unwrap();
    }
    store.close().unwrap();
    assert!(!dir.path().join("abort").exists());
    assert!(dir.path().join("checkpoint").exists());
    drop(store);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.dispatched_offset(), store.commit_log_range().1);
    assert_eq!(read_queue(&store, "Clean", 0).len(), 100);
}

#[test]
fn deleting_a_topic_drops_its_queues() {
    let dir = TempDir::new("deltopic");
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store
        .put_blocking(&[message("Gone", 0, b"x", "")], true)
        .unwrap();
    assert!(store.wait_dispatched(WAIT));
    assert_eq!(store.queue_ids("Gone"), vec![0]);
    store.delete_topic("Gone").unwrap();
    assert!(store.queue_ids("Gone").is_empty());
    assert_eq!(store.max_offset("Gone", 0), 0);
    let again = store
        .put_blocking(&[message("Gone", 0, b"y", "")], true)
        .unwrap();
    assert_eq!(again.append.messages[0].1, 0);
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[allow(dead_code)]
fn _assert_send_sync(store: Arc<MessageStore>) -> impl Send + Sync {
    store
}
