//! The classic HA protocol's two messages (RocketMQ 4.x `store/ha`), on plain
//! TCP, not the remoting frame. Pure codecs: no I/O.
//!
//! Slave → master, a report (the only message a slave sends):
//!
//! | offset | width | field                                                |
//! |--------|-------|------------------------------------------------------|
//! | 0      | 8     | the slave's CommitLog end (i64, big-endian)          |
//!
//! The first report says where to start; each later one acknowledges
//! everything before it. A master reads only the last whole report in what
//! it has received (reports are 8 bytes, so it rounds down to a multiple of 8).
//!
//! Master → slave, a frame:
//!
//! | offset | width | field                                                |
//! |--------|-------|------------------------------------------------------|
//! | 0      | 8     | CommitLog offset of the first data byte (i64)        |
//! | 8      | 4     | data length n (i32); 0 is a heartbeat                |
//! | 12     | n     | CommitLog bytes, as stored (may end inside a record) |

use thiserror::Error;

/// Bytes of a report.
pub const REPORT_LEN: usize = 8;
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 12;

/// A frame header a slave cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The header names a negative offset.
    #[error("frame at negative offset {0}")]
    NegativeOffset(i64),
    /// The header's length is negative or over the limit.
    #[error("frame of {len} bytes at offset {offset}: more than the {max} a frame may carry")]
    TooLarge {
        /// Where the frame's data would go.
        offset: i64,
        /// The length announced.
        len: i64,
        /// The limit.
        max: usize,
    },
}

/// A report of `offset`.
pub fn encode_report(offset: i64) -> [u8; REPORT_LEN] {
    offset.to_be_bytes()
}

/// The last whole report in `buf` and how many bytes of `buf` it accounts
/// for (a multiple of 8; the rest is the start of the next report), or
/// `None` if `buf` holds no whole report.
pub fn last_report(buf: &[u8]) -> Option<(i64, usize)> {
    let whole = buf.len() / REPORT_LEN * REPORT_LEN;
    let last = buf.get(whole.checked_sub(REPORT_LEN)?..whole)?;
    let value = i64::from_be_bytes(last.try_into().expect("8 bytes"));
    Some((value, whole))
}

/// The header of a frame carrying `len` bytes from `offset`.
pub fn encode_header(offset: i64, len: usize) -> [u8; HEADER_LEN] {
    let len = i32::try_from(len).expect("a frame's data is at most a segment");
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&offset.to_be_bytes());
    header[8..].copy_from_slice(&len.to_be_bytes());
    header
}

/// A frame found at the start of a buffer: where its data goes, and where
/// its data lies in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// CommitLog offset of the first data byte.
    pub offset: i64,
    /// The data's range in the buffer (empty for a heartbeat).
    pub data: std::ops::Range<usize>,
}

impl Frame {
    /// Bytes of the buffer the frame takes, header included.
    pub fn len(&self) -> usize {
        self.data.end
    }

    /// Whether the frame carries no data (a heartbeat).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The frame at the start of `buf`: `Ok(None)` until the header and all its
/// data are there; an error for a header no master sends (a length over
/// `max_data` or negative, a negative offset), checked before any data is
/// waited for.
pub fn decode_frame(buf: &[u8], max_data: usize) -> Result<Option<Frame>, WireError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let offset = i64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
    let len = i32::from_be_bytes(header[8..].try_into().expect("4 bytes"));
    if offset < 0 {
        return Err(WireError::NegativeOffset(offset));
    }
    let too_large = || WireError::TooLarge {
        offset,
        len: i64::from(len),
        max: max_data,
    };
    let len = usize::try_from(len).map_err(|_| too_large())?;
    if len > max_data {
        return Err(too_large());
    }
    let end = HEADER_LEN + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame {
        offset,
        data: HEADER_LEN..end,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_is_incomplete_until_its_last_byte() {
        let data = b"commit log bytes";
        let mut buf = encode_header(4096, data.len()).to_vec();
        buf.extend_from_slice(data);
        buf.extend_from_slice(b"next");
        let frame = decode_frame(&buf, 64).unwrap().unwrap();
        assert_eq!(frame.offset, 4096);
        assert_eq!(&buf[frame.data.clone()], data);
        assert_eq!(frame.len(), HEADER_LEN + data.len());
        for cut in 0..HEADER_LEN + data.len() {
            assert_eq!(decode_frame(&buf[..cut], 64), Ok(None), "cut at {cut}");
        }
        let heartbeat = encode_header(7, 0);
        let frame = decode_frame(&heartbeat, 64).unwrap().unwrap();
        assert!(frame.is_empty());
        assert_eq!((frame.offset, frame.len()), (7, HEADER_LEN));
    }

    #[test]
    fn an_oversized_negative_or_misplaced_header_is_refused_before_its_data() {
        let big = encode_header(0, 65);
        assert!(matches!(
            decode_frame(&big, 64),
            Err(WireError::TooLarge { len: 65, .. })
        ));
        let mut negative = encode_header(0, 0);
        negative[8..].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_frame(&negative, 64).is_err());
        let before_zero = encode_header(-8, 0);
        assert_eq!(
            decode_frame(&before_zero, 64),
            Err(WireError::NegativeOffset(-8))
        );
    }

    #[test]
    fn only_the_last_whole_report_counts() {
        assert_eq!(last_report(&[0; 7]), None);
        let mut buf = encode_report(100).to_vec();
        buf.extend_from_slice(&encode_report(200));
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(last_report(&buf), Some((200, 16)));
    }
}
