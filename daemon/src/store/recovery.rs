//! Finding where the valid CommitLog ends, after a clean shutdown or a crash.
//!
//! The `abort` marker decides: absent (clean shutdown) — scan only the last
//! segment that holds data; present (crash) — scan from the last segment whose
//! first record is older than the checkpoint's oldest time. Either scan walks
//! records forward checking magic code, size, body CRC and the record's own
//! physical offset, and stops at the first record that fails; everything from
//! there on is cut (logged with file, offset and reason) and zeroed.
//!
//! The scan itself works on a segment's bytes ([`scan_at`], [`scan_segment`],
//! [`scan_start`]); [`recover_commit_log`] gets those bytes from each
//! segment's [`Appender`], which it holds while nothing else runs, and only
//! then publishes the segments up to the valid end.

use mq::protocol::message::{self, Record, BLANK_MARKER_LEN};

use super::commit_log::CommitLog;
use super::error::Result;
use super::mapped_file::Appender;

/// What the bytes at a position in a segment are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A valid record of this many bytes.
    Record(usize),
    /// A blank marker (or the exact end): the segment is complete.
    EndOfFile,
    /// Zeros: nothing was ever written here.
    EndOfData,
    /// Bytes that are not a valid record, and why.
    Corrupt(String),
}

/// Looks at the record at `pos` of `segment`, the whole of a segment whose
/// first byte is log offset `base`, trusting nothing it reads.
pub(crate) fn scan_at(segment: &[u8], base: u64, pos: usize, verify_crc: bool) -> Scan {
    let remaining = segment.len().saturating_sub(pos);
    if remaining == 0 {
        return Scan::EndOfFile;
    }
    let Some(header) = segment.get(pos..pos + BLANK_MARKER_LEN) else {
        return Scan::Corrupt(format!(
            "{remaining} bytes left, too few for a record header"
        ));
    };
    let (size, magic) = message::peek_header(header).expect("8 bytes were sliced");
    if size == 0 && magic == 0 {
        return Scan::EndOfData;
    }
    let Ok(size) = usize::try_from(size) else {
        return Scan::Corrupt(format!("negative record size {size}"));
    };
    match magic {
        message::BLANK_MAGIC if size == remaining => Scan::EndOfFile,
        message::BLANK_MAGIC => Scan::Corrupt(format!(
            "blank marker of {size} bytes with {remaining} left"
        )),
        message::MESSAGE_MAGIC => {
            // Every record leaves room for a blank marker after it.
            if size.saturating_add(BLANK_MARKER_LEN) > remaining {
                return Scan::Corrupt(format!("record of {size} bytes with only {remaining} left"));
            }
            let bytes = &segment[pos..pos + size];
            match message::decode_record(bytes, verify_crc) {
                Ok(Record::Message(msg, len)) => {
                    let expected = base + pos as u64;
                    if u64::try_from(msg.physical_offset).ok() != Some(expected) {
                        Scan::Corrupt(format!(
                            "record claims physical offset {}, found at {expected}",
                            msg.physical_offset
                        ))
                    } else {
                        Scan::Record(len)
                    }
                }
                Ok(Record::Blank(_)) => Scan::Corrupt("blank marker where a message was".into()),
                Err(e) => Scan::Corrupt(e.to_string()),
            }
        }
        other => Scan::Corrupt(format!("bad magic code {other:#010x}")),
    }
}

/// How the scan of one segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// Valid records up to a blank marker or the exact end: the log goes on in
    /// the next segment.
    Complete,
    /// Valid records up to this position, then zeros: the log ends there.
    EndOfData(usize),
    /// Valid records up to `pos`, then bytes that are not a record (`why`).
    Corrupt {
        /// Where the first bad record starts.
        pos: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Walks the records of `segment` (first byte at log offset `base`) from its
/// start, checking each CRC, until something other than a valid record.
pub(crate) fn scan_segment(segment: &[u8], base: u64) -> SegmentEnd {
    let mut pos = 0;
    loop {
        match scan_at(segment, base, pos, true) {
            // A record is at least its fixed fields long, so this moves on.
            Scan::Record(len) => pos += len,
            Scan::EndOfFile => return SegmentEnd::Complete,
            Scan::EndOfData => return SegmentEnd::EndOfData(pos),
            Scan::Corrupt(why) => return SegmentEnd::Corrupt { pos, why },
        }
    }
}

/// Whether a segment holds anything (a pre-created segment is all zeros).
fn holds_data(segment: &[u8]) -> bool {
    message::peek_header(segment) != Some((0, 0))
}

/// Store timestamp of the first record of a segment, if it has a valid one.
fn first_store_timestamp(segment: &[u8]) -> Option<i64> {
    match message::decode_record(segment, false) {
        Ok(Record::Message(msg, _)) => Some(msg.store_timestamp),
        _ => None,
    }
}

/// Where recovery begins scanning, as an index into `segments` (each one's
/// bytes, oldest first).
pub(crate) fn scan_start(segments: &[&[u8]], crashed: bool, min_timestamp: Option<i64>) -> usize {
    let last_with_data = segments.iter().rposition(|s| holds_data(s)).unwrap_or(0);
    if !crashed {
        return last_with_data;
    }
    let Some(min_ts) = min_timestamp else {
        return 0;
    };
    // The newest segment that began before everything the checkpoint vouches
    // for: older records are flushed and dispatched, newer ones may not be.
    (0..=last_with_data)
        .rev()
        .find(|&i| {
            segments
                .get(i)
                .and_then(|s| first_store_timestamp(s))
                .is_some_and(|ts| ts <= min_ts)
        })
        .unwrap_or(0)
}

/// What [`recover_commit_log`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Log offset of the segment the scan started in: after a crash, records
    /// from there on may be missing from the queues and the index.
    pub(crate) scan_from: i64,
    /// Log offset just past the last valid record.
    pub(crate) end: i64,
}

/// Recovers the CommitLog of a store being opened: picks the segment to scan
/// from ([`scan_start`], with `crashed` and the checkpoint's `min_timestamp`),
/// scans from there, publishes every segment up to the last valid record,
/// zeroes whatever follows it, and deletes later segments.
///
/// Runs before anything appends: it holds every segment's [`Appender`] while
/// it scans, and hands the last one to the log when done.
pub(crate) fn recover_commit_log(
    log: &CommitLog,
    crashed: bool,
    min_timestamp: Option<i64>,
) -> Result<Recovered> {
    let files = log.files();
    let mut segments: Vec<Appender> = files
        .iter()
        .map(|file| {
            file.appender()
                .expect("nothing writes the log before recovery")
        })
        .collect();
    let start = {
        let contents: Vec<&[u8]> = segments.iter().map(Appender::contents).collect();
        scan_start(&contents, crashed, min_timestamp)
    };
    let scan_from = files.get(start).map_or(0, |f| f.base() as i64);
    // Older segments are complete: the scan did not need to look at them.
    for segment in &mut segments[..start] {
        let size = segment.size();
        segment.recover_to(size)?;
    }
    let mut end = scan_from;
    for segment in segments.iter_mut().skip(start) {
        let base = segment.base();
        let (valid, complete) = match scan_segment(segment.contents(), base) {
            SegmentEnd::Complete => (segment.size(), true),
            SegmentEnd::EndOfData(pos) => (pos, false),
            SegmentEnd::Corrupt { pos, why } => {
                log::warn!(
                    "recovery: cutting {} at {pos} (log offset {}): {why}",
                    segment.path().display(),
                    base + pos as u64
                );
                (pos, false)
            }
        };
        segment.recover_to(valid)?;
        end = (base + valid as u64) as i64;
        if !complete {
            break;
        }
    }
    // `end` lies in the segment it was found in, or exactly at a boundary.
    drop(segments);
    log.truncate_to(end)?;
    log.set_flushed_offset(end);
    Ok(Recovered { scan_from, end })
}
