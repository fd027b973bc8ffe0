//! Helpers for the store's unit tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mq_protocol::message::StoredMessage;

use super::commit_log::{blank_marker, PutMessage};
use super::mapped_file::offset_file_name;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes a fresh, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "mq-{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The topic of the records [`record`] and [`message`] build.
pub const TOPIC: &str = "T";

/// Born and store host of the records and messages built here.
const HOST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 10911);

/// One CommitLog record of [`TOPIC`], queue 0, as the store writes it: at log
/// offset `phys`, with `queue_offset`, stored at `store_timestamp` (ms).
pub fn record(phys: u64, queue_offset: i64, store_timestamp: i64, body: &[u8]) -> Vec<u8> {
    StoredMessage {
        body_crc: 0,
        queue_id: 0,
        flag: 0,
        queue_offset,
        physical_offset: i64::try_from(phys).expect("a test offset"),
        sys_flag: 0,
        born_timestamp: store_timestamp,
        born_host: HOST,
        store_timestamp,
        store_host: HOST,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        topic: TOPIC,
        properties: "",
    }
    .encode()
    .expect("a small record encodes")
}

/// A CommitLog segment of `size` bytes starting at log offset `base`: a
/// [`record`] per body, back to back from its start (queue offsets from
/// `first_queue_offset`, the `n`th stored at `1000 × (n + 1)` ms), then zeros.
/// Also returns where each record starts, and where the last one ends.
pub fn segment(
    size: usize,
    base: u64,
    first_queue_offset: i64,
    bodies: &[&[u8]],
) -> (Vec<u8>, Vec<usize>, usize) {
    let mut bytes = Vec::with_capacity(size);
    let mut starts = Vec::new();
    for (n, body) in (0..).zip(bodies) {
        starts.push(bytes.len());
        let phys = base + bytes.len() as u64;
        bytes.extend(record(phys, first_queue_offset + n, 1000 * (n + 1), body));
    }
    let end = bytes.len();
    assert!(end <= size, "records of {end} bytes in a segment of {size}");
    bytes.resize(size, 0);
    (bytes, starts, end)
}

/// Writes hand-built CommitLog segments of `size` bytes (oldest first, from log
/// offset 0) into `dir` under their offset names, creating `dir`.
pub fn write_segments(dir: &Path, size: usize, segments: &[&[u8]]) {
    std::fs::create_dir_all(dir).expect("create the segment directory");
    for (n, bytes) in segments.iter().enumerate() {
        assert_eq!(bytes.len(), size, "segment {n}");
        let path = dir.join(offset_file_name((n * size) as u64));
        std::fs::write(path, bytes).expect("write a segment");
    }
}

/// A message of [`TOPIC`], queue 0, with `body` and no properties.
pub fn message(body: &[u8]) -> PutMessage<'_> {
    PutMessage {
        topic: TOPIC,
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 0,
        born_host: HOST,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        properties: "",
    }
}

/// Flips a bit of the first copy of `body` at or after `at` in `segment`, the
/// way a bad disk would: the record there then fails its CRC check.
pub fn damage_body(segment: &mut [u8], at: usize, body: &[u8]) {
    let found = segment[at..].windows(body.len()).position(|w| w == body);
    segment[at + found.expect("the body is stored as is")] ^= 1;
}

/// Ends `segment` with a blank marker at `end` that fills the rest, as the
/// CommitLog does when the next append does not fit.
pub fn end_with_blank(segment: &mut [u8], end: usize) {
    let marker = blank_marker(segment.len() - end);
    segment[end..end + marker.len()].copy_from_slice(&marker);
}
