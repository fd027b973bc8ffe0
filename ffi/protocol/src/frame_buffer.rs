//! A connection's read buffer, cut into frames: one read from the socket can
//! bring many frames (a client with sixteen requests in flight on one
//! connection sends them back to back), and each is then decoded from the
//! buffer without another system call or allocation. No I/O here: the caller
//! reads into [`FrameBuffer::spare`] and reports what it read with
//! [`FrameBuffer::filled`].
//!
//! The buffer starts small and doubles, up to [`MAX_READ_AHEAD`], whenever a
//! read fills all the room it was given, so that an idle connection costs
//! little and a busy one needs few reads. A frame larger than the buffer
//! grows it to the frame's size (never past the frame limit, which is checked
//! before anything is sized), and the buffer shrinks back once that frame is
//! consumed.
//!
//! A frame over the limit is not buffered: its length field and the start of
//! its header (at most [`OVERSIZED_HEAD_MAX`] bytes, enough to recover the
//! opaque and answer it) are handed out as [`Frame::Oversized`], and the rest
//! of it is dropped as it arrives.

use crate::frame::{frame_length, FrameError};

/// The buffer of a new connection.
const INITIAL_SIZE: usize = 16 * 1024;

/// The most the buffer grows to for reading ahead (frames larger than this
/// grow it further, for as long as they are in it).
pub const MAX_READ_AHEAD: usize = 256 * 1024;

/// The most of an oversized frame's header kept to answer it.
pub const OVERSIZED_HEAD_MAX: usize = 64 * 1024;

/// One frame cut from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame without its length field: exactly what
    /// [`RemotingCommand::decode_frame_body`](crate::frame::RemotingCommand::decode_frame_body)
    /// takes.
    Complete(&'a [u8]),
    /// A frame over the limit, which is being skipped.
    Oversized {
        /// Its length, with the length field.
        len: usize,
        /// The limit.
        max: usize,
        /// The serialize-type word and as much of the header as was kept
        /// (the whole header when it is at most [`OVERSIZED_HEAD_MAX`] bytes).
        head: &'a [u8],
    },
}

/// Bytes read from a connection and not yet handed out as frames.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// The first byte not handed out yet.
    start: usize,
    /// The end of what was read.
    end: usize,
    /// Largest frame accepted, length field included.
    max_frame: usize,
    /// How many bytes the frame at `start` needs buffered before it can be
    /// handed out (0: not known yet).
    need: usize,
    /// Bytes of an oversized frame still to drop as they arrive.
    discard: usize,
    /// The read-ahead size the buffer has grown to (at most [`MAX_READ_AHEAD`]).
    read_ahead: usize,
}

impl FrameBuffer {
    /// An empty buffer for frames up to `max_frame` bytes (length field included).
    pub fn new(max_frame: usize) -> Self {
        FrameBuffer {
            buf: vec![0; INITIAL_SIZE],
            start: 0,
            end: 0,
            max_frame,
            need: 0,
            discard: 0,
            read_ahead: INITIAL_SIZE,
        }
    }

    /// Whether bytes of an unfinished frame are buffered (an end of stream now
    /// would cut a frame).
    pub fn is_mid_frame(&self) -> bool {
        self.end > self.start || self.discard > 0
    }

    /// Room to read into, never empty: the caller reads into it and then
    /// calls [`filled`](Self::filled) with the count.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.read_ahead && self.need <= self.read_ahead {
                // A large frame has gone: give its memory back.
                self.buf.truncate(self.read_ahead);
                self.buf.shrink_to_fit();
            }
        }
        let want = self.need.max(self.read_ahead);
        if self.start > 0 && (self.start + want > self.buf.len() || self.end == self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        if self.end == self.buf.len() {
            // Only when `need` is met already; frames are cut before more is read.
            self.buf.resize(self.buf.len() + INITIAL_SIZE, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        let room = self.buf.len() - self.end;
        assert!(n <= room, "read {n} bytes into {room} bytes of room");
        if n == room && self.read_ahead < MAX_READ_AHEAD {
            // The read filled all it was given: more was probably waiting.
            self.read_ahead *= 2;
        }
        self.end += n;
    }

    /// The next frame, `Ok(None)` if it is not all here yet. An error means
    /// the stream's framing is lost (a negative or too small length): the
    /// connection cannot go on.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if self.discard > 0 {
            let drop = self.discard.min(self.end - self.start);
            self.start += drop;
            self.discard -= drop;
            if self.discard > 0 {
                return Ok(None);
            }
        }
        let available = &self.buf[self.start..self.end];
        match frame_length(available, self.max_frame) {
            Ok(None) => {
                self.need = 4;
                Ok(None)
            }
            Ok(Some(length)) => {
                let total = 4 + length;
                if available.len() < total {
                    self.need = total;
                    return Ok(None);
                }
                let at = self.start;
                self.start += total;
                self.need = 0;
                Ok(Some(Frame::Complete(&self.buf[at + 4..at + total])))
            }
            Err(FrameError::TooLarge { len, max }) => {
                // The length field and the serialize-type word first.
                let Some(word) = available.get(4..8) else {
                    self.need = 8;
                    return Ok(None);
                };
                let header_len =
                    (u32::from_be_bytes(word.try_into().expect("4 bytes")) & 0x00FF_FFFF) as usize;
                let head_len = if header_len <= OVERSIZED_HEAD_MAX && header_len + 8 <= len {
                    4 + header_len
                } else {
                    4
                };
                if available.len() < 4 + head_len {
                    self.need = 4 + head_len;
                    return Ok(None);
                }
                let at = self.start;
                self.start += 4 + head_len;
                self.discard = len - 4 - head_len;
                self.need = 0;
                let drop = self.discard.min(self.end - self.start);
                self.start += drop;
                self.discard -= drop;
                Ok(Some(Frame::Oversized {
                    len,
                    max,
                    head: &self.buf[at + 4..at + 4 + head_len],
                }))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{RemotingCommand, SerializeType, DEFAULT_MAX_FRAME};

    fn frame(opaque: i32, body_len: usize) -> Vec<u8> {
        let mut cmd = RemotingCommand::request(310);
        cmd.opaque = opaque;
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.body = vec![7; body_len];
        cmd.encode().expect("encodes")
    }

    /// Feeds `bytes` in reads of at most `chunk` bytes; returns the frames'
    /// opaques (oversized ones as negative lengths).
    fn feed(buffer: &mut FrameBuffer, bytes: &[u8], chunk: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let spare = buffer.spare();
            assert!(!spare.is_empty());
            let n = chunk.min(spare.len()).min(bytes.len() - at);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            buffer.filled(n);
            at += n;
            while let Some(f) = buffer.next_frame().expect("framing holds") {
                match f {
                    Frame::Complete(body) => {
                        let cmd = RemotingCommand::decode_frame_body(body).expect("decodes");
                        out.push(i64::from(cmd.opaque));
                    }
                    Frame::Oversized { len, head, .. } => {
                        assert!(head.len() >= 4);
                        out.push(-(len as i64));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn cuts_frames_whatever_the_reads() {
        let mut stream = Vec::new();
        let sizes = [0, 1, 1024, 40_000, 3, 300_000, 10];
        for (i, size) in sizes.iter().enumerate() {
            stream.extend(frame(i as i32, *size));
        }
        let expected: Vec<i64> = (0..sizes.len() as i64).collect();
        for chunk in [1, 7, 1000, 16 * 1024, 1 << 20] {
            let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME);
            assert_eq!(feed(&mut buffer, &stream, chunk), expected, "chunk {chunk}");
            assert!(!buffer.is_mid_frame());
            // The large frame's memory is given back.
            buffer.spare();
            assert!(buffer.buf.len() <= MAX_READ_AHEAD, "chunk {chunk}");
        }
    }

    #[test]
    fn read_ahead_grows_when_reads_fill_the_buffer() {
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME);
        for _ in 0..10 {
            let n = buffer.spare().len();
            buffer.filled(n);
            buffer.start = buffer.end;
        }
        assert_eq!(buffer.read_ahead, MAX_READ_AHEAD);
        assert!(buffer.spare().len() >= MAX_READ_AHEAD);
    }

    #[test]
    fn oversized_frames_are_skipped_with_their_head() {
        let max = 64 * 1024;
        let mut stream = frame(1, 10);
        stream.extend(frame(2, 100_000));
        stream.extend(frame(3, 10));
        let total = frame(2, 100_000).len() as i64;
        for chunk in [1, 13, 4096, 1 << 20] {
            let mut buffer = FrameBuffer::new(max);
            assert_eq!(
                feed(&mut buffer, &stream, chunk),
                [1, -total, 3],
                "chunk {chunk}"
            );
            assert!(buffer.buf.len() <= MAX_READ_AHEAD, "not buffered");
        }
        // The head holds the header, from which the opaque can be read.
        let mut buffer = FrameBuffer::new(max);
        let big = frame(9, 100_000);
        buffer.spare()[..big.len().min(16 * 1024)].copy_from_slice(&big[..16 * 1024]);
        buffer.filled(16 * 1024);
        match buffer.next_frame().expect("framing holds") {
            Some(Frame::Oversized { head, .. }) => {
                assert_eq!(&head[4 + 5..4 + 9], &9i32.to_be_bytes(), "opaque");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lost_framing_is_an_error() {
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME);
        buffer.spare()[..4].copy_from_slice(&(-5i32).to_be_bytes());
        buffer.filled(4);
        assert!(buffer.next_frame().is_err());
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME);
        buffer.spare()[..2].copy_from_slice(&[0, 0]);
        buffer.filled(2);
        assert_eq!(buffer.next_frame(), Ok(None));
        assert!(buffer.is_mid_frame());
    }
}
