//! The stored-message record: RocketMQ's CommitLog layout, which is also the body
//! of PULL_MESSAGE, QUERY_MESSAGE and VIEW_MESSAGE_BY_ID responses.
//!
//! All integers are big-endian.
//!
//! | offset (IPv4 hosts) | width | field |
//! |---|---|---|
//! | 0  | 4 | TOTALSIZE, the whole record including this field |
//! | 4  | 4 | MAGICCODE, [`MESSAGE_MAGIC`] (or [`BLANK_MAGIC`] for the end-of-file filler) |
//! | 8  | 4 | BODYCRC, `crc32(body) & 0x7fff_ffff` over the body as stored |
//! | 12 | 4 | QUEUEID |
//! | 16 | 4 | FLAG |
//! | 20 | 8 | QUEUEOFFSET |
//! | 28 | 8 | PHYSICALOFFSET |
//! | 36 | 4 | SYSFLAG ([`sys_flag`]) |
//! | 40 | 8 | BORNTIMESTAMP (ms) |
//! | 48 | 8 or 20 | BORNHOST: IPv4 (4) + port (4), or IPv6 (16) + port (4) when [`sys_flag::BORNHOST_V6`] |
//! | .. | 8 | STORETIMESTAMP (ms) |
//! | .. | 8 or 20 | STOREHOST, IPv6 when [`sys_flag::STOREHOST_V6`] |
//! | .. | 4 | RECONSUMETIMES |
//! | .. | 8 | PREPARED TRANSACTION OFFSET |
//! | .. | 4 + n | BODY length and bytes |
//! | .. | 1 + n | TOPIC length (at most 127, Java reads a signed byte) and UTF-8 bytes |
//! | .. | 2 + n | PROPERTIES length (at most 32767) and the properties string ([`super::properties`]) |
//!
//! A blank marker is 8 bytes: TOTALSIZE = the bytes left in the segment, then
//! [`BLANK_MAGIC`]; readers skip to the next segment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// MAGICCODE of a message record.
pub const MESSAGE_MAGIC: u32 = 0xDAA3_20A7;
/// MAGICCODE of the end-of-segment filler.
pub const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// Size of a blank marker: TOTALSIZE and MAGICCODE.
pub const BLANK_MARKER_LEN: usize = 8;
/// Longest topic the record can hold: Java decodes the length as a signed byte.
pub const MAX_TOPIC_LEN: usize = 127;
/// Longest properties string the record can hold: the length is a signed short.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
/// Byte offset of QUEUEOFFSET, the same for every record.
pub const QUEUE_OFFSET_POS: usize = 20;
/// Byte offset of PHYSICALOFFSET, the same for every record.
pub const PHYSICAL_OFFSET_POS: usize = 28;
/// Byte offset of SYSFLAG, the same for every record.
pub const SYS_FLAG_POS: usize = 36;
/// Byte offset of BORNHOST, the same for every record.
const BORN_HOST_POS: usize = 48;
/// Fixed part of a record with IPv4 hosts, without body, topic and properties.
const FIXED_LEN_V4: usize = 91;

/// MessageSysFlag bits (RocketMQ `MessageSysFlag`).
pub mod sys_flag {
    /// The body is compressed (see the compression type bits).
    pub const COMPRESSED: i32 = 0x1;
    /// Legacy, unused.
    pub const MULTI_TAGS: i32 = 0x2;
    /// Mask of the 2-bit transaction type.
    pub const TRANSACTION_MASK: i32 = 0xC;
    /// Not a transactional message.
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    /// A transactional half message.
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    /// A transaction commit record.
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    /// A transaction rollback record.
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    /// BORNHOST is 16 + 4 bytes.
    pub const BORNHOST_V6: i32 = 0x10;
    /// STOREHOST is 16 + 4 bytes.
    pub const STOREHOST_V6: i32 = 0x20;
    /// Mask of the compression type (0x100 LZ4, 0x200 ZSTD, 0x300 ZLIB; 0 means ZLIB).
    pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
    /// Compression type ZLIB as 4.9.7 producers set it.
    pub const COMPRESSION_ZLIB: i32 = 0x300;

    /// The transaction type bits of `flag`.
    pub fn transaction_type(flag: i32) -> i32 {
        flag & TRANSACTION_MASK
    }
}

/// Why a record could not be encoded.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The topic is longer than the record's one-byte length allows.
    #[error("topic is {len} bytes, at most {MAX_TOPIC_LEN} are allowed")]
    TopicTooLong {
        /// Length of the offending topic.
        len: usize,
    },
    /// The properties string is longer than the record's two-byte length allows.
    #[error("properties are {len} bytes, at most {MAX_PROPERTIES_LEN} are allowed")]
    PropertiesTooLong {
        /// Length of the offending properties string.
        len: usize,
    },
    /// The body does not fit a record (its length field is an i32).
    #[error("body is {len} bytes, too large for a record")]
    BodyTooLarge {
        /// Length of the offending body.
        len: usize,
    },
}

/// Why bytes are not a valid record.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the record does.
    #[error("record truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// MAGICCODE is neither a message nor a blank marker.
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    /// TOTALSIZE is negative or too small to hold the fixed fields.
    #[error("bad total size {0}")]
    BadTotalSize(i32),
    /// A length inside the record is negative.
    #[error("negative {field} length {len}")]
    NegativeLength {
        /// The field whose length is negative.
        field: &'static str,
        /// The length read.
        len: i32,
    },
    /// TOTALSIZE disagrees with the sum of the field lengths.
    #[error("total size {declared} disagrees with the fields, which need {computed}")]
    SizeMismatch {
        /// TOTALSIZE as stored.
        declared: usize,
        /// Size computed from the field lengths.
        computed: usize,
    },
    /// BODYCRC does not match the body.
    #[error("body CRC {stored:#010x} stored, {computed:#010x} computed")]
    BadCrc {
        /// CRC stored in the record.
        stored: u32,
        /// CRC of the body as read.
        computed: u32,
    },
    /// A text field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
}

/// One record of the CommitLog, borrowed from the bytes it was decoded from (or
/// from the caller when encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage<'a> {
    /// BODYCRC as stored (decoding) or as it will be stored (encoding ignores it
    /// and computes the CRC of `body`).
    pub body_crc: u32,
    /// Queue within the topic.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Logical offset within the topic's queue.
    pub queue_offset: i64,
    /// Offset of this record in the whole CommitLog.
    pub physical_offset: i64,
    /// [`sys_flag`] bits; the two host-family bits are derived from the hosts when encoding.
    pub sys_flag: i32,
    /// When the producer made the message, in ms since the epoch.
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// When the broker stored the message, in ms since the epoch.
    pub store_timestamp: i64,
    /// The storing broker's address.
    pub store_host: SocketAddr,
    /// How many times the message has been consumed again.
    pub reconsume_times: i32,
    /// CommitLog offset of the half message, for transaction commit and rollback records.
    pub prepared_transaction_offset: i64,
    /// The body as stored (compressed when [`sys_flag::COMPRESSED`] is set).
    pub body: &'a [u8],
    /// The topic.
    pub topic: &'a str,
    /// The properties string ([`super::properties`]).
    pub properties: &'a str,
}

/// What the bytes at a record boundary hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A message record and its length.
    Message(StoredMessage<'a>, usize),
    /// The end-of-segment filler; the `usize` is its TOTALSIZE (the bytes left in the segment).
    Blank(usize),
}

/// Byte length of an encoded host address for `sys_flag` bit `v6`.
fn host_len(v6: bool) -> usize {
    if v6 {
        20
    } else {
        8
    }
}

/// `crc32(body) & 0x7fff_ffff`, RocketMQ's body CRC (java.util.zip.CRC32, top bit cleared).
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

impl<'a> StoredMessage<'a> {
    /// The encoded length of this record.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        if self.topic.len() > MAX_TOPIC_LEN {
            return Err(EncodeError::TopicTooLong {
                len: self.topic.len(),
            });
        }
        if self.properties.len() > MAX_PROPERTIES_LEN {
            return Err(EncodeError::PropertiesTooLong {
                len: self.properties.len(),
            });
        }
        let hosts = host_len(self.born_host.is_ipv6()) + host_len(self.store_host.is_ipv6());
        let len =
            FIXED_LEN_V4 - 16 + hosts + self.body.len() + self.topic.len() + self.properties.len();
        if i32::try_from(len).is_err() {
            return Err(EncodeError::BodyTooLarge {
                len: self.body.len(),
            });
        }
        Ok(len)
    }

    /// The sys flag as it will be written: the host-family bits follow the hosts.
    pub fn effective_sys_flag(&self) -> i32 {
        let mut flag = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            flag |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            flag |= sys_flag::STOREHOST_V6;
        }
        flag
    }

    /// Appends the encoded record to `out`, computing BODYCRC from the body.
    /// Returns the record's length.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let len = self.encoded_len()?;
        out.reserve(len);
        let start = out.len();
        put_i32(out, len as i32);
        out.extend_from_slice(&MESSAGE_MAGIC.to_be_bytes());
        out.extend_from_slice(&body_crc(self.body).to_be_bytes());
        put_i32(out, self.queue_id);
        put_i32(out, self.flag);
        out.extend_from_slice(&self.queue_offset.to_be_bytes());
        out.extend_from_slice(&self.physical_offset.to_be_bytes());
        put_i32(out, self.effective_sys_flag());
        out.extend_from_slice(&self.born_timestamp.to_be_bytes());
        put_host(out, &self.born_host);
        out.extend_from_slice(&self.store_timestamp.to_be_bytes());
        put_host(out, &self.store_host);
        put_i32(out, self.reconsume_times);
        out.extend_from_slice(&self.prepared_transaction_offset.to_be_bytes());
        put_i32(out, self.body.len() as i32);
        out.extend_from_slice(self.body);
        out.push(self.topic.len() as u8);
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(self.properties.len() as u16).to_be_bytes());
        out.extend_from_slice(self.properties.as_bytes());
        debug_assert_eq!(out.len() - start, len);
        Ok(len)
    }

    /// The encoded record as a new vector.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    put_i32(out, i32::from(addr.port()));
}

/// A bounds-checked big-endian reader over one record.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated {
            needed: usize::MAX,
            available: self.buf.len(),
        })?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated {
            needed: end,
            available: self.buf.len(),
        })?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn host(&mut self, v6: bool) -> Result<SocketAddr, DecodeError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))
        };
        // The port is an i32 on the wire; anything outside u16 is kept as its low
        // 16 bits rather than rejected, as Java's InetSocketAddress would throw.
        let port = self.i32()? as u16;
        Ok(SocketAddr::new(ip, port))
    }
}

/// Reads TOTALSIZE and MAGICCODE at the start of `buf` without decoding the rest.
/// `None` when fewer than 8 bytes are there.
pub fn peek_header(buf: &[u8]) -> Option<(i32, u32)> {
    let size = i32::from_be_bytes(buf.get(0..4)?.try_into().ok()?);
    let magic = u32::from_be_bytes(buf.get(4..8)?.try_into().ok()?);
    Some((size, magic))
}

/// Decodes the record at the start of `buf`. With `verify_crc` the body CRC is
/// checked as well. Every length is checked against the buffer and against
/// TOTALSIZE before it is used, so a corrupt record is an error, never a panic.
pub fn decode_record(buf: &[u8], verify_crc: bool) -> Result<Record<'_>, DecodeError> {
    let (size, magic) = peek_header(buf).ok_or(DecodeError::Truncated {
        needed: BLANK_MARKER_LEN,
        available: buf.len(),
    })?;
    match magic {
        BLANK_MAGIC => {
            let size = usize::try_from(size).map_err(|_| DecodeError::BadTotalSize(size))?;
            if size < BLANK_MARKER_LEN {
                return Err(DecodeError::BadTotalSize(size as i32));
            }
            Ok(Record::Blank(size))
        }
        MESSAGE_MAGIC => {
            let total = usize::try_from(size).map_err(|_| DecodeError::BadTotalSize(size))?;
            if total < FIXED_LEN_V4 {
                return Err(DecodeError::BadTotalSize(size));
            }
            let record = buf.get(..total).ok_or(DecodeError::Truncated {
                needed: total,
                available: buf.len(),
            })?;
            let msg = decode_message(record, verify_crc)?;
            Ok(Record::Message(msg, total))
        }
        other => Err(DecodeError::BadMagic(other)),
    }
}

/// Decodes a message record that spans exactly `record`.
fn decode_message(record: &[u8], verify_crc: bool) -> Result<StoredMessage<'_>, DecodeError> {
    let mut r = Reader {
        buf: record,
        pos: 8,
    };
    let body_crc = r.i32()? as u32;
    let queue_id = r.i32()?;
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let physical_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let born_timestamp = r.i64()?;
    let born_host = r.host(sys_flag & sys_flag::BORNHOST_V6 != 0)?;
    let store_timestamp = r.i64()?;
    let store_host = r.host(sys_flag & sys_flag::STOREHOST_V6 != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let body_len = r.i32()?;
    let body_len = usize::try_from(body_len).map_err(|_| DecodeError::NegativeLength {
        field: "body",
        len: body_len,
    })?;
    let body = r.take(body_len)?;
    let topic_len = usize::from(r.array::<1>()?[0]);
    let topic = r.take(topic_len)?;
    let props_len = i16::from_be_bytes(r.array()?);
    let props_len = usize::try_from(props_len).map_err(|_| DecodeError::NegativeLength {
        field: "properties",
        len: i32::from(props_len),
    })?;
    let properties = r.take(props_len)?;
    if r.pos != record.len() {
        return Err(DecodeError::SizeMismatch {
            declared: record.len(),
            computed: r.pos,
        });
    }
    if verify_crc {
        let computed = self::body_crc(body);
        if computed != body_crc {
            return Err(DecodeError::BadCrc {
                stored: body_crc,
                computed,
            });
        }
    }
    Ok(StoredMessage {
        body_crc,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic: std::str::from_utf8(topic).map_err(|_| DecodeError::BadUtf8("topic"))?,
        properties: std::str::from_utf8(properties)
            .map_err(|_| DecodeError::BadUtf8("properties"))?,
    })
}

/// Byte offset of STORETIMESTAMP in a record with this sys flag.
pub fn store_timestamp_pos(sys_flag: i32) -> usize {
    BORN_HOST_POS + host_len(sys_flag & sys_flag::BORNHOST_V6 != 0)
}

/// Decodes every record of a PULL_MESSAGE body (records back to back). Stops with
/// an error at the first malformed record rather than silently, as Java does.
pub fn decode_records(
    mut buf: &[u8],
    verify_crc: bool,
) -> Result<Vec<StoredMessage<'_>>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        match decode_record(buf, verify_crc)? {
            Record::Message(msg, len) => {
                out.push(msg);
                buf = &buf[len..];
            }
            Record::Blank(_) => return Err(DecodeError::BadMagic(BLANK_MAGIC)),
        }
    }
    Ok(out)
}

/// The broker's offset message id (§6.6): store host address, port (i32) and
/// CommitLog offset (i64), as uppercase hex (32 characters for IPv4).
pub fn offset_msg_id(store_host: &SocketAddr, physical_offset: i64) -> String {
    let mut bytes = Vec::with_capacity(28);
    put_host(&mut bytes, store_host);
    bytes.extend_from_slice(&physical_offset.to_be_bytes());
    // Every sent and every pulled message has one: a table, not `format!` per byte.
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

/// Reads an offset message id back into store host and CommitLog offset; `None`
/// for anything that is not 32 (IPv4) or 56 (IPv6) hex characters.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    let v6 = match id.len() {
        32 => false,
        56 => true,
        _ => return None,
    };
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let mut r = Reader {
        buf: &bytes,
        pos: 0,
    };
    let host = r.host(v6).ok()?;
    // The port is an i32 on the wire: one outside 0..=65535, or a negative
    // offset, means this is not an offset id (a client unique id, say).
    let port_pos = if v6 { 16 } else { 4 };
    let port = i32::from_be_bytes(bytes.get(port_pos..port_pos + 4)?.try_into().ok()?);
    if !(0..=i32::from(u16::MAX)).contains(&port) {
        return None;
    }
    let offset = r.i64().ok()?;
    (offset >= 0).then_some((host, offset))
}

/// One message of a SEND_BATCH_MESSAGE body (§6.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// User flag.
    pub flag: i32,
    /// Body.
    pub body: &'a [u8],
    /// Properties string.
    pub properties: &'a str,
}

/// Decodes a batch body: records of TOTALSIZE, MAGICCODE (ignored), BODYCRC
/// (ignored), FLAG, body (i32 length) and properties (i16 length). Every length
/// is checked against TOTALSIZE and the buffer.
pub fn decode_batch(mut buf: &[u8]) -> Result<Vec<BatchItem<'_>>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let mut r = Reader { buf, pos: 0 };
        let total = r.i32()?;
        let total_len = usize::try_from(total).map_err(|_| DecodeError::BadTotalSize(total))?;
        if total_len < 22 || total_len > buf.len() {
            return Err(if total_len > buf.len() {
                DecodeError::Truncated {
                    needed: total_len,
                    available: buf.len(),
                }
            } else {
                DecodeError::BadTotalSize(total)
            });
        }
        let mut r = Reader {
            buf: &buf[..total_len],
            pos: 4,
        };
        r.take(8)?; // magic code and body CRC: the broker computes its own
        let flag = r.i32()?;
        let body_len = r.i32()?;
        let body_len = usize::try_from(body_len).map_err(|_| DecodeError::NegativeLength {
            field: "body",
            len: body_len,
        })?;
        let body = r.take(body_len)?;
        let props_len = i16::from_be_bytes(r.array()?);
        let props_len = usize::try_from(props_len).map_err(|_| DecodeError::NegativeLength {
            field: "properties",
            len: i32::from(props_len),
        })?;
        let properties = std::str::from_utf8(r.take(props_len)?)
            .map_err(|_| DecodeError::BadUtf8("properties"))?;
        if r.pos != total_len {
            return Err(DecodeError::SizeMismatch {
                declared: total_len,
                computed: r.pos,
            });
        }
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
        buf = &buf[total_len..];
    }
    Ok(out)
}

/// Encodes one message of a batch body (§6.8), as the Java producer does.
pub fn encode_batch_item(item: &BatchItem<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if item.properties.len() > MAX_PROPERTIES_LEN {
        return Err(EncodeError::PropertiesTooLong {
            len: item.properties.len(),
        });
    }
    let total = 22 + item.body.len() + item.properties.len();
    let total = i32::try_from(total).map_err(|_| EncodeError::BodyTooLarge {
        len: item.body.len(),
    })?;
    put_i32(out, total);
    put_i32(out, 0);
    put_i32(out, 0);
    put_i32(out, item.flag);
    put_i32(out, item.body.len() as i32);
    out.extend_from_slice(item.body);
    out.extend_from_slice(&(item.properties.len() as u16).to_be_bytes());
    out.extend_from_slice(item.properties.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(body: &'a [u8], topic: &'a str, props: &'a str) -> StoredMessage<'a> {
        StoredMessage {
            body_crc: body_crc(body),
            queue_id: 3,
            flag: 7,
            queue_offset: 42,
            physical_offset: 1 << 33,
            sys_flag: sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB,
            born_timestamp: 1_700_000_000_123,
            born_host: "10.1.2.3:5555".parse().unwrap(),
            store_timestamp: 1_700_000_000_456,
            store_host: "192.168.0.9:10911".parse().unwrap(),
            reconsume_times: 2,
            prepared_transaction_offset: 99,
            body,
            topic,
            properties: props,
        }
    }

    #[test]
    fn every_field_round_trips() {
        let msg = sample(b"hello", "TopicTest", "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA");
        let bytes = msg.encode().unwrap();
        assert_eq!(bytes.len(), 91 + 5 + 9 + msg.properties.len());
        match decode_record(&bytes, true).unwrap() {
            Record::Message(back, len) => {
                assert_eq!(len, bytes.len());
                assert_eq!(back, msg);
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn ipv6_hosts_set_their_flags_and_round_trip() {
        let mut msg = sample(b"x", "T", "");
        msg.born_host = "[::1]:1234".parse().unwrap();
        msg.store_host = "[fe80::1]:10911".parse().unwrap();
        let bytes = msg.encode().unwrap();
        assert_eq!(bytes.len(), 91 + 24 + 1 + 1);
        let Record::Message(back, _) = decode_record(&bytes, true).unwrap() else {
            panic!("not a message")
        };
        assert_eq!(back.sys_flag & sys_flag::BORNHOST_V6, sys_flag::BORNHOST_V6);
        assert_eq!(
            back.sys_flag & sys_flag::STOREHOST_V6,
            sys_flag::STOREHOST_V6
        );
        assert_eq!(back.born_host, msg.born_host);
        assert_eq!(back.store_host, msg.store_host);
        assert_eq!(store_timestamp_pos(back.sys_flag), 68);
    }

    #[test]
    fn fixed_offsets_match_the_reference() {
        let msg = sample(b"abc", "T", "");
        let bytes = msg.encode().unwrap();
        let at = |pos: usize| i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        assert_eq!(at(QUEUE_OFFSET_POS), 42);
        assert_eq!(at(PHYSICAL_OFFSET_POS), 1 << 33);
        assert_eq!(at(store_timestamp_pos(0)), 1_700_000_000_456);
        assert_eq!(&bytes[4..8], &MESSAGE_MAGIC.to_be_bytes());
    }

    #[test]
    fn truncation_at_every_byte_is_an_error_not_a_panic() {
        let msg = sample(b"body bytes", "TopicTest", "UNIQ_KEY\u{1}ABC");
        let bytes = msg.encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_record(&bytes[..cut], true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_lengths_and_crc_are_reported() {
        let msg = sample(b"body", "T", "");
        let good = msg.encode().unwrap();

        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&(i32::MAX).to_be_bytes());
        assert!(matches!(
            decode_record(&bad, true),
            Err(DecodeError::Truncated { .. })
        ));

        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            decode_record(&bad, true),
            Err(DecodeError::BadTotalSize(-5))
        );

        let mut bad = good.clone();
        bad[4] ^= 0xFF;
        assert!(matches!(
            decode_record(&bad, true),
            Err(DecodeError::BadMagic(_))
        ));

        let mut bad = good.clone();
        let body_pos = 88;
        bad[body_pos] ^= 0x01;
        assert!(matches!(
            decode_record(&bad, true),
            Err(DecodeError::BadCrc { .. })
        ));
        assert!(decode_record(&bad, false).is_ok());

        // A body length that runs past TOTALSIZE.
        let mut bad = good.clone();
        bad[84..88].copy_from_slice(&1000i32.to_be_bytes());
        assert!(decode_record(&bad, true).is_err());

        // A negative body length.
        let mut bad = good;
        bad[84..88].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            decode_record(&bad, true),
            Err(DecodeError::NegativeLength { field: "body", .. })
        ));
    }

    #[test]
    fn blank_marker_is_recognised() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&100i32.to_be_bytes());
        buf.extend_from_slice(&BLANK_MAGIC.to_be_bytes());
        assert_eq!(decode_record(&buf, true), Ok(Record::Blank(100)));
    }

    #[test]
    fn oversized_fields_are_refused_when_encoding() {
        let topic = "t".repeat(128);
        assert_eq!(
            sample(b"", &topic, "").encode(),
            Err(EncodeError::TopicTooLong { len: 128 })
        );
        let props = "p".repeat(40_000);
        assert_eq!(
            sample(b"", "T", &props).encode(),
            Err(EncodeError::PropertiesTooLong { len: 40_000 })
        );
    }

    #[test]
    fn offset_msg_id_round_trips() {
        let host: SocketAddr = "10.10.10.10:10911".parse().unwrap();
        let id = offset_msg_id(&host, 0);
        assert_eq!(id, "0A0A0A0A00002A9F0000000000000000");
        assert_eq!(decode_offset_msg_id(&id), Some((host, 0)));
        let v6: SocketAddr = "[fe80::1]:10911".parse().unwrap();
        let id = offset_msg_id(&v6, 1234);
        assert_eq!(id.len(), 56);
        assert_eq!(decode_offset_msg_id(&id), Some((v6, 1234)));
        assert_eq!(decode_offset_msg_id("zz"), None);
        assert_eq!(decode_offset_msg_id(&"G".repeat(32)), None);
        // A client unique id is 32 hex digits too, but its "port" is out of range.
        assert_eq!(
            decode_offset_msg_id("7F000001303918B4AAC24F7A8C900000"),
            None
        );
    }

    #[test]
    fn batch_bodies_round_trip_and_reject_bad_lengths() {
        let items = [
            BatchItem {
                flag: 1,
                body: b"one",
                properties: "KEYS\u{1}k1",
            },
            BatchItem {
                flag: 0,
                body: b"",
                properties: "",
            },
        ];
        let mut body = Vec::new();
        for item in &items {
            encode_batch_item(item, &mut body).unwrap();
        }
        assert_eq!(decode_batch(&body).unwrap(), items);
        for cut in 1..body.len() {
            let _ = decode_batch(&body[..cut]); // never panics
        }
        let mut bad = body.clone();
        bad[0..4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_batch(&bad).is_err());
        let mut bad = body;
        bad[16..20].copy_from_slice(&(1000i32).to_be_bytes());
        assert!(decode_batch(&bad).is_err());
    }

    #[test]
    fn decode_records_walks_a_pull_body() {
        let a = sample(b"a", "T", "").encode().unwrap();
        let b = sample(b"bb", "T", "").encode().unwrap();
        let body = [a, b].concat();
        let msgs = decode_records(&body, true).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].body, b"bb");
    }
}
