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

use mq_protocol::message::{self, Record, BLANK_MARKER_LEN};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit_log::blank_marker;
    use crate::store::test_util::{damage_body, end_with_blank, record, segment};

    /// Bytes per segment in these tests.
    const SIZE: usize = 1024;

    /// Where a scan of a segment says the log ends in it (`None`: it goes on).
    fn cut(end: SegmentEnd) -> Option<usize> {
        match end {
            SegmentEnd::Complete => None,
            SegmentEnd::EndOfData(pos) | SegmentEnd::Corrupt { pos, .. } => Some(pos),
        }
    }

    /// Why a scan of a segment found it corrupt, and where.
    fn corrupt(end: SegmentEnd) -> (usize, String) {
        match end {
            SegmentEnd::Corrupt { pos, why } => (pos, why),
            other => panic!("expected a corrupt record, got {other:?}"),
        }
    }

    #[test]
    fn a_scan_walks_valid_records_up_to_the_zeros_after_them() {
        let (seg, at, end) = segment(SIZE, 0, 0, &[b"one", b"two", b"three"]);
        assert_eq!(scan_at(&seg, 0, 0, true), Scan::Record(at[1]));
        assert_eq!(scan_at(&seg, 0, at[1], true), Scan::Record(at[2] - at[1]));
        assert_eq!(scan_at(&seg, 0, at[2], true), Scan::Record(end - at[2]));
        assert_eq!(scan_at(&seg, 0, end, true), Scan::EndOfData);
        assert_eq!(scan_segment(&seg, 0), SegmentEnd::EndOfData(end));
        // A segment further on in the log holds records with offsets from its base.
        let (later, _, end) = segment(SIZE, 7 * SIZE as u64, 0, &[b"one"]);
        assert_eq!(
            scan_segment(&later, 7 * SIZE as u64),
            SegmentEnd::EndOfData(end)
        );
    }

    #[test]
    fn a_torn_record_is_cut_where_it_starts() {
        let (whole, at, end) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        let len = end - at[1];
        // The second record written only up to `written` bytes, as a crash leaves it.
        for written in [4, 8, 20, 60, len - 4] {
            let mut torn = whole.clone();
            torn[at[1] + written..].fill(0);
            let (pos, why) = corrupt(scan_segment(&torn, 0));
            assert_eq!(pos, at[1], "{written} bytes written: {why}");
        }
        // Torn inside TOTALSIZE's leading zero bytes, it looks never written.
        let mut torn = whole.clone();
        torn[at[1] + 2..].fill(0);
        assert_eq!(scan_segment(&torn, 0), SegmentEnd::EndOfData(at[1]));
        // Or cut off by the end of the segment.
        let (pos, why) = corrupt(scan_segment(&whole[..end - 1], 0));
        assert_eq!(pos, at[1]);
        assert!(why.contains("left"), "{why}");
    }

    #[test]
    fn a_bad_crc_is_cut_and_only_the_crc_check_sees_it() {
        let (mut seg, at, _) = segment(SIZE, 0, 0, &[b"one", b"two", b"three"]);
        damage_body(&mut seg, at[1], b"two");
        assert_eq!(scan_at(&seg, 0, at[1], false), Scan::Record(at[2] - at[1]));
        let (pos, why) = corrupt(scan_segment(&seg, 0));
        assert_eq!(pos, at[1]);
        assert!(why.contains("CRC"), "{why}");
    }

    #[test]
    fn a_record_claiming_another_offset_is_cut() {
        let (seg, at, _) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        // The same bytes as the segment at SIZE: every offset is wrong.
        let (pos, why) = corrupt(scan_segment(&seg, SIZE as u64));
        assert_eq!(pos, 0);
        assert!(
            why.contains(&format!("claims physical offset 0, found at {SIZE}")),
            "{why}"
        );
        // A valid record left where another belongs (a stale copy of record 0).
        let mut stale = seg.clone();
        let first = record(0, 0, 1000, b"one");
        stale[at[1]..at[1] + first.len()].copy_from_slice(&first);
        assert_eq!(
            scan_at(&stale, 0, at[1], false),
            scan_at(&stale, 0, at[1], true)
        );
        let (pos, why) = corrupt(scan_segment(&stale, 0));
        assert_eq!(pos, at[1]);
        assert!(why.contains("claims physical offset 0"), "{why}");
    }

    #[test]
    fn a_blank_marker_filling_the_tail_completes_the_segment() {
        let (mut seg, _, end) = segment(SIZE, 0, 0, &[b"one"]);
        end_with_blank(&mut seg, end);
        assert_eq!(scan_at(&seg, 0, end, true), Scan::EndOfFile);
        assert_eq!(scan_segment(&seg, 0), SegmentEnd::Complete);
        // A marker that does not fill the tail exactly is not trusted.
        seg[end..end + BLANK_MARKER_LEN].copy_from_slice(&blank_marker(SIZE - end - 1));
        let (pos, why) = corrupt(scan_segment(&seg, 0));
        assert_eq!(pos, end);
        assert!(why.contains("blank marker"), "{why}");
        // The exact end of a segment is its end too.
        assert_eq!(scan_at(&seg, 0, SIZE, true), Scan::EndOfFile);
    }

    #[test]
    fn a_record_leaving_no_room_for_a_blank_marker_is_corrupt() {
        let one = record(0, 0, 1000, b"one");
        let mut seg = one.clone();
        seg.resize(one.len() + BLANK_MARKER_LEN - 1, 0);
        let (pos, why) = corrupt(scan_segment(&seg, 0));
        assert_eq!(pos, 0);
        assert!(why.contains("only"), "{why}");
        seg.push(0);
        assert_eq!(scan_segment(&seg, 0), SegmentEnd::EndOfData(one.len()));
    }

    #[test]
    fn nonsense_headers_are_corrupt_never_a_panic() {
        let (seg, _, _) = segment(SIZE, 0, 0, &[b"one"]);
        let with_header = |size: i32, magic: u32| {
            let mut bad = seg.clone();
            bad[..4].copy_from_slice(&size.to_be_bytes());
            bad[4..8].copy_from_slice(&magic.to_be_bytes());
            corrupt(scan_segment(&bad, 0)).1
        };
        let magic = message::MESSAGE_MAGIC;
        assert!(with_header(-5, magic).contains("negative record size -5"));
        assert!(with_header(0, magic).contains("truncated"));
        assert!(with_header(i32::MAX, magic).contains("left"));
        assert!(with_header(100, 0x1234_5678).contains("bad magic code 0x12345678"));
        assert!(matches!(scan_at(&seg[..5], 0, 0, true), Scan::Corrupt(_)));
        assert_eq!(cut(scan_segment(&[0; 16], 0)), Some(0));
    }

    #[test]
    fn scan_start_is_the_last_segment_with_data_or_after_a_crash_the_checkpoints() {
        let starting_at = |n: u64, ts: i64| {
            let mut seg = record(n * SIZE as u64, 0, ts, b"x");
            seg.resize(SIZE, 0);
            seg
        };
        let segs = [
            starting_at(0, 1000),
            starting_at(1, 2000),
            starting_at(2, 3000),
            vec![0; SIZE],
        ];
        let all: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
        assert_eq!(scan_start(&all, false, None), 2);
        assert_eq!(scan_start(&all, false, Some(1500)), 2);
        assert_eq!(scan_start(&all, true, None), 0);
        assert_eq!(scan_start(&all, true, Some(2500)), 1);
        assert_eq!(scan_start(&all, true, Some(3000)), 2);
        assert_eq!(scan_start(&all, true, Some(999)), 0);
        // A segment whose first record is damaged cannot vouch for its time.
        let mut damaged = segs[1].clone();
        damaged[4] ^= 0xff;
        let with_damage = [all[0], &damaged, all[2]];
        assert_eq!(scan_start(&with_damage, true, Some(2500)), 0);
        assert_eq!(scan_start(&[&[0u8; SIZE][..]; 3], false, None), 0);
        assert_eq!(scan_start(&[], true, Some(0)), 0);
    }
}
