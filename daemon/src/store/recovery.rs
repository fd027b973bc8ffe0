//! Finding where the valid CommitLog ends, after a clean shutdown or a crash.
//!
//! The `abort` marker decides: absent (clean shutdown) — scan only the last
//! segment that holds data; present (crash) — scan from the last segment whose
//! first record is older than the checkpoint's oldest time. Either scan walks
//! records forward checking magic code, size, body CRC and the record's own
//! physical offset, and stops at the first record that fails; everything from
//! there on is cut (logged with file, offset and reason) and zeroed.

use mq::protocol::message::{self, Record, BLANK_MARKER_LEN};

use super::commit_log::CommitLog;
use super::error::Result;
use super::mapped_file::MappedFile;

/// What the bytes at a position in a segment are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A valid record of this many bytes.
    Record(usize),
    /// A blank marker (or the exact end): the segment is complete.
    EndOfFile,
    /// Zeros: nothing was ever written here.
    EndOfData,
    /// Bytes that are not a valid record, and why.
    Corrupt(String),
}

/// Looks at the record at `pos` of `file`, trusting nothing it reads.
pub fn scan_at(file: &MappedFile, pos: usize, verify_crc: bool) -> Scan {
    let remaining = file.size() - pos;
    if remaining == 0 {
        return Scan::EndOfFile;
    }
    let Some(header) = file.slice_unchecked_position(pos, BLANK_MARKER_LEN) else {
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
            let bytes = file
                .slice_unchecked_position(pos, size)
                .expect("size checked against the file");
            match message::decode_record(bytes, verify_crc) {
                Ok(Record::Message(msg, len)) => {
                    let expected = file.base() + pos as u64;
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

/// Whether a segment holds anything (a pre-created segment is all zeros).
fn holds_data(file: &MappedFile) -> bool {
    !matches!(scan_at(file, 0, false), Scan::EndOfData)
}

/// Store timestamp of the first record of a segment, if it has a valid one.
fn first_store_timestamp(file: &MappedFile) -> Option<i64> {
    let header = file.slice_unchecked_position(0, BLANK_MARKER_LEN)?;
    let (size, _) = message::peek_header(header)?;
    let bytes = file.slice_unchecked_position(0, usize::try_from(size).ok()?)?;
    match message::decode_record(bytes, false) {
        Ok(Record::Message(msg, _)) => Some(msg.store_timestamp),
        _ => None,
    }
}

/// Where recovery begins scanning, as an index into the segment list.
pub fn scan_start(
    files: &[std::sync::Arc<MappedFile>],
    crashed: bool,
    min_timestamp: Option<i64>,
) -> usize {
    let last_with_data = files.iter().rposition(|f| holds_data(f)).unwrap_or(0);
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
        .find(|&i| first_store_timestamp(&files[i]).is_some_and(|ts| ts <= min_ts))
        .unwrap_or(0)
}

/// Scans the CommitLog from segment `start`, sets every segment's positions,
/// cuts and zeroes whatever follows the last valid record, and deletes later
/// segments. Returns the recovered end offset.
pub fn recover_commit_log(log: &CommitLog, start: usize) -> Result<i64> {
    let files = log.files();
    let Some(first) = files.get(start) else {
        return Ok(0);
    };
    let mut end = first.base() as i64;
    'files: for file in &files[start..] {
        let mut pos = 0;
        loop {
            match scan_at(file, pos, true) {
                Scan::Record(len) => pos += len,
                Scan::EndOfFile => {
                    file.set_positions(file.size());
                    end = (file.base() + file.size() as u64) as i64;
                    continue 'files;
                }
                Scan::EndOfData => {
                    end = (file.base() + pos as u64) as i64;
                    break 'files;
                }
                Scan::Corrupt(why) => {
                    log::warn!(
                        "recovery: cutting {} at {pos} (log offset {}): {why}",
                        file.path().display(),
                        file.base() + pos as u64
                    );
                    end = (file.base() + pos as u64) as i64;
                    break 'files;
                }
            }
        }
    }
    // `end` lies in the segment it was found in, or exactly at a boundary.
    log.truncate_to(end)?;
    if let Some(file) = log.file_for(end) {
        let pos = (end as u64 - file.base()) as usize;
        file.set_positions(pos);
        file.zero_from(pos)?;
    }
    log.set_flushed_offset(end);
    Ok(end)
}
