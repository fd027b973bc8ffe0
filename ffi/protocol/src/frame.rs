//! The remoting frame and the `RemotingCommand` it carries (protocol reference §1–2).
//!
//! | offset | width | field |
//! |---|---|---|
//! | 0 | 4 | length: bytes after this field (4 + header + body) |
//! | 4 | 4 | serialize type (high byte: 0 JSON, 1 ROCKETMQ) and header length (low 24 bits) |
//! | 8 | header length | the header, JSON text or the ROCKETMQ binary form |
//! | .. | the rest | the body, opaque bytes |
//!
//! ROCKETMQ binary header:
//!
//! | offset | width | field |
//! |---|---|---|
//! | 0 | 2 | code (i16) |
//! | 2 | 1 | language (u8) |
//! | 3 | 2 | version (i16) |
//! | 5 | 4 | opaque (i32) |
//! | 9 | 4 | flag (i32) |
//! | 13 | 4 | remark length, then remark (UTF-8) |
//! | .. | 4 | extFields length, then entries: key length (i16), key, value length (i32), value |
//!
//! Decoding is liberal (§10): JSON extFields values may be numbers or booleans,
//! `language` a name or an ordinal, any header field missing. Encoding is strict:
//! what Java 4.9 emits.

use thiserror::Error;

pub use crate::ext_fields::ExtFields;

/// Largest frame accepted by default (RocketMQ's `frameMaxLength`, 16 MiB,
/// counted with the 4-byte length field).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Flag bit: this command is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit: a one-way request, which gets no response.
pub const FLAG_ONEWAY: i32 = 0x2;

/// The version this implementation puts on what it sends: 4.9.7's ordinal.
pub const CURRENT_VERSION: i32 = 407;

/// How the header is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    /// JSON text (Java's default).
    #[default]
    Json,
    /// RocketMQ's binary header.
    RocketMq,
}

impl SerializeType {
    fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

/// The sender's language (RocketMQ `LanguageCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
}

const LANGUAGES: [(LanguageCode, &str); 13] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
];

impl LanguageCode {
    /// The wire code (the enum's ordinal).
    pub fn code(self) -> u8 {
        LANGUAGES
            .iter()
            .position(|(l, _)| *l == self)
            .expect("every language is in the table") as u8
    }

    /// The language of a wire code; unknown codes read as `Other`.
    pub fn from_code(code: u8) -> Self {
        LANGUAGES
            .get(usize::from(code))
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }

    /// The name Java writes in JSON headers.
    pub fn name(self) -> &'static str {
        LANGUAGES[usize::from(self.code())].1
    }

    /// The language of a name (any case); unknown names read as `Other`.
    pub fn from_name(name: &str) -> Self {
        LANGUAGES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request code, or response code in a response.
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's version ordinal.
    pub version: i32,
    /// Request id, echoed by the response.
    pub opaque: i32,
    /// [`FLAG_RESPONSE`] and [`FLAG_ONEWAY`] bits.
    pub flag: i32,
    /// Free text; the error message of a failed response.
    pub remark: Option<String>,
    /// The custom header.
    pub ext_fields: ExtFields,
    /// The body.
    pub body: Vec<u8>,
    /// How the header was (or will be) serialised.
    pub serialize_type: SerializeType,
}

/// Why bytes could not be decoded as a frame.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is larger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced frame length (with the length field).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length field is smaller than the 4-byte header-length word.
    #[error("frame length {0} is too small")]
    TooSmall(i64),
    /// The header length runs past the frame.
    #[error("header of {header} bytes does not fit a frame of {frame} bytes")]
    BadHeaderLength {
        /// The announced header length.
        header: usize,
        /// The frame length after the length field.
        frame: usize,
    },
    /// A serialize type other than JSON (0) or ROCKETMQ (1).
    #[error("unknown serialize type {0}")]
    BadSerializeType(u8),
    /// The header could not be decoded.
    #[error("bad header: {0}")]
    BadHeader(String),
}

/// Why a command could not be encoded.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The header or body does not fit the frame's length fields.
    #[error("command too large to encode: {0}")]
    TooLarge(String),
}

impl RemotingCommand {
    /// A request with `code` and no header fields.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            version: CURRENT_VERSION,
            ..Default::default()
        }
    }

    /// A response to `request` with `code` and `remark`, in the request's serialization.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            version: CURRENT_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            serialize_type: request.serialize_type,
            ..Default::default()
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a one-way request (no response is sent).
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this request one-way.
    pub fn set_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// Sets a header field.
    pub fn put(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.ext_fields.insert(key, &value.to_string());
        self
    }

    /// A header field, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// Encodes the whole frame, length field included.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the whole frame, length field included, to `out` (a buffer
    /// that a connection reuses for its writes). On error `out` is as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_with_body_into(&self.body, out)
    }

    /// [`encode_into`](Self::encode_into) with `body` in place of the
    /// command's own (which is left out): a sender whose body lives
    /// elsewhere writes it once, into `out`, without copying it into the
    /// command first.
    pub fn encode_with_body_into(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let at = out.len();
        // The two length words are written once the header's size is known.
        out.extend_from_slice(&[0; 8]);
        let written = match self.serialize_type {
            SerializeType::Json => {
                self.encode_json_header(out);
                Ok(())
            }
            SerializeType::RocketMq => self.encode_binary_header(out),
        };
        let header_len = out.len() - at - 8;
        let result = written.and_then(|()| {
            if header_len > 0x00FF_FFFF {
                return Err(EncodeError::TooLarge(format!(
                    "header of {header_len} bytes"
                )));
            }
            let length = 4 + header_len + body.len();
            i32::try_from(length)
                .map_err(|_| EncodeError::TooLarge(format!("frame of {length} bytes")))
        });
        let length = match result {
            Ok(length) => length,
            Err(e) => {
                out.truncate(at);
                return Err(e);
            }
        };
        out[at..at + 4].copy_from_slice(&length.to_be_bytes());
        let word = (u32::from(self.serialize_type.code()) << 24) | header_len as u32;
        out[at + 4..at + 8].copy_from_slice(&word.to_be_bytes());
        out.extend_from_slice(body);
        Ok(())
    }

    fn encode_json_header(&self, out: &mut Vec<u8>) {
        crate::json_header::encode(self, out);
    }

    fn encode_binary_header(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let code = i16::try_from(self.code)
            .map_err(|_| EncodeError::TooLarge(format!("code {} does not fit i16", self.code)))?;
        let version = i16::try_from(self.version).unwrap_or(i16::MAX);
        out.extend_from_slice(&code.to_be_bytes());
        out.push(self.language.code());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.as_deref().unwrap_or("");
        out.extend_from_slice(&len_i32(remark.len())?.to_be_bytes());
        out.extend_from_slice(remark.as_bytes());
        // The extFields length is written once the entries are.
        let ext_at = out.len();
        out.extend_from_slice(&[0; 4]);
        for (key, value) in self.ext_fields.iter() {
            let key_len = i16::try_from(key.len())
                .map_err(|_| EncodeError::TooLarge(format!("header key of {} bytes", key.len())))?;
            out.extend_from_slice(&key_len.to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&len_i32(value.len())?.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        let ext_len = len_i32(out.len() - ext_at - 4)?;
        out[ext_at..ext_at + 4].copy_from_slice(&ext_len.to_be_bytes());
        Ok(())
    }

    /// Decodes one frame from the start of `buf`. `Ok(None)` means more bytes are
    /// needed; otherwise returns the command and the bytes it used. Every length
    /// is checked before it sizes anything.
    pub fn decode(buf: &[u8], max_frame: usize) -> Result<Option<(Self, usize)>, FrameError> {
        let Some(length) = frame_length(buf, max_frame)? else {
            return Ok(None);
        };
        let Some(frame) = buf.get(4..4 + length) else {
            return Ok(None);
        };
        let cmd = Self::decode_frame_body(frame)?;
        Ok(Some((cmd, 4 + length)))
    }

    /// Decodes a frame without its length field (exactly the `length` bytes).
    pub fn decode_frame_body(frame: &[u8]) -> Result<Self, FrameError> {
        let word = u32::from_be_bytes(
            frame
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(FrameError::TooSmall(frame.len() as i64))?,
        );
        let serialize = (word >> 24) as u8;
        let header_len = (word & 0x00FF_FFFF) as usize;
        let header = frame
            .get(4..4 + header_len)
            .ok_or(FrameError::BadHeaderLength {
                header: header_len,
                frame: frame.len(),
            })?;
        let body = frame[4 + header_len..].to_vec();
        let mut cmd = match serialize {
            0 => crate::json_header::decode(header)?,
            1 => decode_binary_header(header)?,
            other => return Err(FrameError::BadSerializeType(other)),
        };
        cmd.body = body;
        Ok(cmd)
    }
}

/// The `length` field of the frame at the start of `buf` (bytes after the
/// field), checked against `max_frame`; `Ok(None)` if fewer than 4 bytes.
pub fn frame_length(buf: &[u8], max_frame: usize) -> Result<Option<usize>, FrameError> {
    let Some(bytes) = buf.get(0..4) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes(bytes.try_into().expect("4 bytes"));
    let length = usize::try_from(length).map_err(|_| FrameError::TooSmall(i64::from(length)))?;
    if length < 4 {
        return Err(FrameError::TooSmall(length as i64));
    }
    if length.saturating_add(4) > max_frame {
        return Err(FrameError::TooLarge {
            len: length.saturating_add(4),
            max: max_frame,
        });
    }
    Ok(Some(length))
}

fn len_i32(len: usize) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooLarge(format!("field of {len} bytes")))
}

/// A bounds-checked reader over the binary header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FrameError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                FrameError::BadHeader(format!(
                    "{what}: {n} bytes at {} run past the {}-byte header",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i16(&mut self, what: &str) -> Result<i16, FrameError> {
        Ok(i16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self, what: &str) -> Result<i32, FrameError> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn len(&mut self, n: i64, what: &str) -> Result<usize, FrameError> {
        usize::try_from(n).map_err(|_| FrameError::BadHeader(format!("negative {what} length {n}")))
    }

    fn string(&mut self, n: usize, what: &str) -> Result<&'a str, FrameError> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| FrameError::BadHeader(format!("{what} is not UTF-8")))
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, FrameError> {
    let mut c = Cursor {
        buf: header,
        pos: 0,
    };
    let code = i32::from(c.i16("code")?);
    let language = LanguageCode::from_code(c.take(1, "language")?[0]);
    let version = i32::from(c.i16("version")?);
    let opaque = c.i32("opaque")?;
    let flag = c.i32("flag")?;
    let remark_len = c.i32("remark length")?;
    let remark_len = c.len(i64::from(remark_len), "remark")?;
    // Java reads a zero-length string as null.
    let remark = if remark_len == 0 {
        None
    } else {
        Some(c.string(remark_len, "remark")?.to_owned())
    };
    let ext_len = c.i32("extFields length")?;
    let ext_len = c.len(i64::from(ext_len), "extFields")?;
    let ext = c.take(ext_len, "extFields")?;
    let mut e = Cursor { buf: ext, pos: 0 };
    // Keys and values are most of these bytes: one allocation for them.
    let mut ext_fields = ExtFields::with_capacity(16, ext.len());
    while e.pos < ext.len() {
        let key_len = e.i16("extFields key length")?;
        let key_len = e.len(i64::from(key_len), "extFields key")?;
        let key = e.string(key_len, "extFields key")?;
        let value_len = e.i32("extFields value length")?;
        let value_len = e.len(i64::from(value_len), "extFields value")?;
        let value = e.string(value_len, "extFields value")?;
        ext_fields.insert(key, value);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Vec::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(serialize_type: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(310);
        cmd.opaque = 12;
        cmd.serialize_type = serialize_type;
        cmd.put("a", "ProducerGroupA")
            .put("b", "TopicTest")
            .put("e", 2);
        cmd.put("i", "TAGS\u{1}TagA\u{2}WAIT\u{1}true");
        cmd.remark = Some("hello".into());
        cmd.body = b"body bytes".to_vec();
        cmd
    }

    #[test]
    fn both_serializations_round_trip() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let cmd = sample(st);
            let bytes = cmd.encode().unwrap();
            let (back, used) = RemotingCommand::decode(&bytes, DEFAULT_MAX_FRAME)
                .unwrap()
                .unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, cmd, "{st:?}");
        }
    }

    #[test]
    fn json_header_is_what_java_writes() {
        let mut cmd = RemotingCommand::request(105);
        cmd.put("topic", "TopicTest");
        let bytes = cmd.encode().unwrap();
        let header = std::str::from_utf8(&bytes[8..]).unwrap();
        assert_eq!(
            header,
            r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":0,"serializeTypeCurrentRPC":"JSON","version":407}"#
        );
        assert_eq!(&bytes[0..4], &((4 + header.len()) as i32).to_be_bytes());
        assert_eq!(&bytes[4..8], &(header.len() as u32).to_be_bytes());
    }

    #[test]
    fn control_characters_are_escaped_and_read_back() {
        let cmd = sample(SerializeType::Json);
        let bytes = cmd.encode().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(r"\u0001"), "{text}");
    }

    fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + header.len() + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn lenient_json_headers_from_other_clients() {
        let header = r#"{"code":"310","language":9,"opaque":5,"extFields":{"e":0,"g":1795611471547,"k":false,"x":null,"AccessKey":""},"remark":""}
"#;
        let (cmd, _) = RemotingCommand::decode(&json_frame(header, b""), DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.code, 310);
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.version, 0);
        assert_eq!(cmd.get("e"), Some("0"));
        assert_eq!(cmd.get("g"), Some("1795611471547"));
        assert_eq!(cmd.get("k"), Some("false"));
        assert_eq!(cmd.get("x"), None);
        assert_eq!(cmd.get("AccessKey"), Some(""));
        let (cmd, _) = RemotingCommand::decode(
            &json_frame(r#"{"code":34,"language":"CPP"}"#, b"x"),
            DEFAULT_MAX_FRAME,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cmd.language, LanguageCode::Cpp);
        assert_eq!(cmd.body, b"x");
    }

    #[test]
    fn truncation_at_every_byte_needs_more_not_an_error() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let bytes = sample(st).encode().unwrap();
            for cut in 0..bytes.len() {
                assert_eq!(
                    RemotingCommand::decode(&bytes[..cut], DEFAULT_MAX_FRAME),
                    Ok(None),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut huge = Vec::new();
        huge.extend_from_slice(&(i32::MAX).to_be_bytes());
        assert!(matches!(
            RemotingCommand::decode(&huge, DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge { .. })
        ));
        // The limit counts the length field: 16777212 is the largest accepted length.
        let mut edge = Vec::new();
        edge.extend_from_slice(&(16_777_213i32).to_be_bytes());
        assert!(RemotingCommand::decode(&edge, DEFAULT_MAX_FRAME).is_err());
        edge[0..4].copy_from_slice(&(16_777_212i32).to_be_bytes());
        assert_eq!(RemotingCommand::decode(&edge, DEFAULT_MAX_FRAME), Ok(None));

        assert!(matches!(
            RemotingCommand::decode(&(-1i32).to_be_bytes(), DEFAULT_MAX_FRAME),
            Err(FrameError::TooSmall(-1))
        ));
        assert!(matches!(
            RemotingCommand::decode(&2i32.to_be_bytes(), DEFAULT_MAX_FRAME),
            Err(FrameError::TooSmall(2))
        ));
        // Header length past the frame.
        let mut bad = Vec::new();
        bad.extend_from_slice(&8i32.to_be_bytes());
        bad.extend_from_slice(&100u32.to_be_bytes());
        bad.extend_from_slice(b"{}{}");
        assert!(matches!(
            RemotingCommand::decode(&bad, DEFAULT_MAX_FRAME),
            Err(FrameError::BadHeaderLength { .. })
        ));
        // Unknown serialize type.
        let mut bad = json_frame("{}", b"");
        bad[4] = 7;
        assert_eq!(
            RemotingCommand::decode(&bad, DEFAULT_MAX_FRAME),
            Err(FrameError::BadSerializeType(7))
        );
        // Not JSON.
        assert!(matches!(
            RemotingCommand::decode(&json_frame("{nope", b""), DEFAULT_MAX_FRAME),
            Err(FrameError::BadHeader(_))
        ));
    }

    #[test]
    fn binary_header_lengths_are_checked() {
        let bytes = sample(SerializeType::RocketMq).encode().unwrap();
        // Remark length pointing far past the header.
        let mut bad = bytes.clone();
        bad[8 + 13..8 + 17].copy_from_slice(&(1_000_000i32).to_be_bytes());
        assert!(matches!(
            RemotingCommand::decode(&bad, DEFAULT_MAX_FRAME),
            Err(FrameError::BadHeader(_))
        ));
        let mut bad = bytes;
        bad[8 + 13..8 + 17].copy_from_slice(&(-3i32).to_be_bytes());
        assert!(matches!(
            RemotingCommand::decode(&bad, DEFAULT_MAX_FRAME),
            Err(FrameError::BadHeader(_))
        ));
    }

    #[test]
    fn response_echoes_opaque_and_serialization() {
        let req = sample(SerializeType::RocketMq);
        let resp = RemotingCommand::response_to(&req, 0, None);
        assert!(resp.is_response());
        assert_eq!(resp.opaque, 12);
        assert_eq!(resp.serialize_type, SerializeType::RocketMq);
        let mut oneway = RemotingCommand::request(15);
        oneway.set_oneway();
        assert!(oneway.is_oneway() && !oneway.is_response());
    }

    #[test]
    fn language_codes_match_the_reference() {
        assert_eq!(LanguageCode::Go.code(), 9);
        assert_eq!(LanguageCode::Rust.code(), 12);
        assert_eq!(LanguageCode::from_name("java"), LanguageCode::Java);
        assert_eq!(LanguageCode::from_code(200), LanguageCode::Other);
    }
}
