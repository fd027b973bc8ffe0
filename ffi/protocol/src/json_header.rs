//! The JSON form of a command's header (serialize type 0, Java's default),
//! read and written directly over bytes: the header has a fixed shape (a flat
//! object of a few numbers and strings, and `extFields`, an object of
//! strings), so a scanner reads the known fields straight into the
//! [`RemotingCommand`] and its [`ExtFields`] without building a JSON tree,
//! and the writer emits what fastjson emits without one either.
//!
//! Reading is liberal (protocol reference §10), as other clients are:
//! - integers may be numbers, fractional numbers (truncated) or strings
//!   holding an integer; a missing or null one is 0;
//! - `language` may be a name (any case) or an ordinal; an unknown one is
//!   `OTHER`, a missing one `JAVA`;
//! - extFields values may be strings, numbers or booleans (kept as their
//!   text); a null value is a field that was not sent; an object or array
//!   value is kept as its JSON text;
//! - fields it does not know are skipped, whatever their value.
//!
//! It is strict where the JSON itself is broken: unterminated strings, raw
//! control characters or bad escapes in strings, invalid UTF-8, missing
//! colons or commas, unbalanced brackets, nesting deeper than [`MAX_DEPTH`],
//! text after the object.

use std::borrow::Cow;
use std::io::Write as _;

use crate::ext_fields::ExtFields;
use crate::frame::{FrameError, LanguageCode, RemotingCommand, SerializeType};

/// Deepest nesting accepted inside a value that is skipped.
pub const MAX_DEPTH: usize = 64;

/// Reads a JSON header into a command (with an empty body).
pub(crate) fn decode(header: &[u8]) -> Result<RemotingCommand, FrameError> {
    // Checked once for the whole header: every slice the scanner takes then
    // starts and ends at an ASCII byte, so it is UTF-8 too.
    let text = std::str::from_utf8(header).map_err(|e| {
        FrameError::BadHeader(format!(
            "JSON header: a string is not UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let mut s = Scanner {
        text,
        bytes: header,
        pos: 0,
    };
    let mut cmd = RemotingCommand {
        serialize_type: SerializeType::Json,
        ..RemotingCommand::default()
    };
    s.ws();
    s.expect(b'{', "the header is not a JSON object")?;
    s.ws();
    if !s.eat(b'}') {
        loop {
            let key = s.key()?;
            match key.as_ref() {
                "code" => cmd.code = s.int_field("code")?,
                "version" => cmd.version = s.int_field("version")?,
                "opaque" => cmd.opaque = s.int_field("opaque")?,
                "flag" => cmd.flag = s.int_field("flag")?,
                "language" => cmd.language = s.language()?,
                "remark" => cmd.remark = s.remark()?,
                "extFields" => cmd.ext_fields = s.ext_fields()?,
                _ => {
                    s.skip_value()?;
                }
            }
            s.ws();
            if s.eat(b',') {
                s.ws();
                continue;
            }
            s.expect(b'}', "expected ',' or '}' after a field")?;
            break;
        }
    }
    s.ws();
    if s.pos != s.bytes.len() {
        return Err(s.error("text after the header object"));
    }
    Ok(cmd)
}

/// Appends the JSON header of `cmd`: fastjson's field order (alphabetical,
/// nulls left out), compact.
pub(crate) fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{{\"code\":{}", cmd.code);
    if !cmd.ext_fields.is_empty() {
        out.extend_from_slice(b",\"extFields\":{");
        for (i, (key, value)) in cmd.ext_fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(out, key);
            out.push(b':');
            write_string(out, value);
        }
        out.push(b'}');
    }
    let _ = write!(
        out,
        ",\"flag\":{},\"language\":\"{}\",\"opaque\":{}",
        cmd.flag,
        cmd.language.name(),
        cmd.opaque
    );
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        write_string(out, remark);
    }
    let _ = write!(
        out,
        ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":{}}}",
        cmd.version
    );
}

/// A JSON string, escaped as serde_json and fastjson do: quote, backslash
/// and control characters; everything else as it is (UTF-8).
fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        clean_from = i + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// A cursor over the header's bytes.
struct Scanner<'a> {
    /// The header, checked to be UTF-8.
    text: &'a str,
    /// The same, as bytes.
    bytes: &'a [u8],
    pos: usize,
}

/// What a value starts with.
enum Kind {
    String,
    Number,
    True,
    False,
    Null,
    Object,
    Array,
}

impl<'a> Scanner<'a> {
    fn error(&self, what: &str) -> FrameError {
        FrameError::BadHeader(format!("JSON header: {what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), FrameError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// An object key and its colon; the scanner is then at the value.
    fn key(&mut self) -> Result<Cow<'a, str>, FrameError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a quoted key"));
        }
        let key = self.string()?;
        self.ws();
        self.expect(b':', "expected ':' after a key")?;
        self.ws();
        Ok(key)
    }

    fn kind(&self) -> Result<Kind, FrameError> {
        Ok(match self.peek() {
            Some(b'"') => Kind::String,
            Some(b'-' | b'0'..=b'9') => Kind::Number,
            Some(b't') => Kind::True,
            Some(b'f') => Kind::False,
            Some(b'n') => Kind::Null,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(_) => return Err(self.error("expected a value")),
            None => return Err(self.error("the header ends where a value should be")),
        })
    }

    /// A string at the scanner, unescaped: borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, FrameError> {
        let start = self.pos + 1;
        let mut end = start;
        // The common case: no escape, so the text is the bytes themselves.
        while let Some(&b) = self.bytes.get(end) {
            match b {
                b'"' => {
                    self.pos = end + 1;
                    return Ok(Cow::Borrowed(&self.text[start..end]));
                }
                b'\\' => break,
                0..=0x1f => {
                    self.pos = end;
                    return Err(self.error("a control character inside a string"));
                }
                _ => end += 1,
            }
        }
        let mut owned = String::new();
        self.string_into(&mut owned)?;
        Ok(Cow::Owned(owned))
    }

    /// Appends the string at the scanner, unescaped, to `out`.
    fn string_into(&mut self, out: &mut String) -> Result<(), FrameError> {
        self.pos += 1;
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.escape(out)?,
                Some(_) => return Err(self.error("a control character inside a string")),
                None => return Err(self.error("an unterminated string")),
            }
        }
    }

    /// One escape sequence (the scanner at its backslash).
    fn escape(&mut self, out: &mut String) -> Result<(), FrameError> {
        let Some(&code) = self.bytes.get(self.pos + 1) else {
            return Err(self.error("an unterminated escape"));
        };
        self.pos += 2;
        let c = match code {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate: a low one must follow.
                    if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.error("an unpaired surrogate escape"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("an unpaired surrogate escape"));
                    }
                    let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    char::from_u32(c).ok_or_else(|| self.error("a bad escape"))?
                } else {
                    char::from_u32(unit)
                        .ok_or_else(|| self.error("an unpaired surrogate escape"))?
                }
            }
            _ => return Err(self.error("a bad escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, FrameError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("a bad \\u escape"))?;
        self.pos += 4;
        Ok(digits)
    }

    /// The text of the number at the scanner.
    fn number(&mut self) -> Result<&'a str, FrameError> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        let text = &self.text[start..self.pos];
        if text.parse::<f64>().is_err() {
            self.pos = start;
            return Err(self.error("a bad number"));
        }
        Ok(text)
    }

    fn literal(&mut self, word: &'static str) -> Result<&'static str, FrameError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(word)
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    /// Skips the value at the scanner; returns its text.
    fn skip_value(&mut self) -> Result<&'a str, FrameError> {
        let start = self.pos;
        match self.kind()? {
            Kind::Object | Kind::Array => self.skip_container()?,
            _ => self.skip_scalar()?,
        }
        Ok(&self.text[start..self.pos])
    }

    /// Skips a string, number, `true`, `false` or `null`.
    fn skip_scalar(&mut self) -> Result<(), FrameError> {
        match self.kind()? {
            Kind::String => drop(self.string()?),
            Kind::Number => drop(self.number()?),
            Kind::True => drop(self.literal("true")?),
            Kind::False => drop(self.literal("false")?),
            Kind::Null => drop(self.literal("null")?),
            Kind::Object | Kind::Array => return Err(self.error("expected a scalar")),
        }
        Ok(())
    }

    /// Skips an object or array, checking its syntax, with a stack of open
    /// brackets instead of recursion.
    fn skip_container(&mut self) -> Result<(), FrameError> {
        // The closing bracket each open container expects.
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value is expected here.
            match self.peek() {
                Some(byte @ (b'{' | b'[')) => {
                    if open.len() == MAX_DEPTH {
                        return Err(self.error("nested too deep"));
                    }
                    let close = if byte == b'{' { b'}' } else { b']' };
                    open.push(close);
                    self.pos += 1;
                    self.ws();
                    if self.eat(close) {
                        open.pop();
                    } else {
                        if close == b'}' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                _ => self.skip_scalar()?,
            }
            // After a value: a comma and the next one, or closing brackets.
            loop {
                self.ws();
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                if self.eat(b',') {
                    self.ws();
                    if close == b'}' {
                        self.key()?;
                    }
                    break;
                }
                self.expect(close, "expected ',' or a closing bracket")?;
                open.pop();
            }
        }
    }

    fn int_field(&mut self, key: &str) -> Result<i32, FrameError> {
        let start = self.pos;
        let n = match self.kind()? {
            Kind::Null => {
                self.literal("null")?;
                return Ok(0);
            }
            Kind::Number => {
                let text = self.number()?;
                integer(text)
            }
            Kind::String => {
                let text = self.string()?;
                text.trim().parse::<i64>().ok()
            }
            _ => {
                self.skip_value()?;
                None
            }
        };
        n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
            let text = String::from_utf8_lossy(&self.bytes[start..self.pos]);
            FrameError::BadHeader(format!("{key} is not a 32-bit integer: {text}"))
        })
    }

    fn language(&mut self) -> Result<LanguageCode, FrameError> {
        Ok(match self.kind()? {
            Kind::String => LanguageCode::from_name(&self.string()?),
            Kind::Number => {
                let text = self.number()?;
                integer(text)
                    .and_then(|n| u8::try_from(n).ok())
                    .map_or(LanguageCode::Other, LanguageCode::from_code)
            }
            _ => {
                self.skip_value()?;
                LanguageCode::Other
            }
        })
    }

    fn remark(&mut self) -> Result<Option<String>, FrameError> {
        Ok(match self.kind()? {
            Kind::String => Some(self.string()?.into_owned()),
            Kind::Null => {
                self.literal("null")?;
                None
            }
            _ => Some(self.skip_value()?.to_owned()),
        })
    }

    fn ext_fields(&mut self) -> Result<ExtFields, FrameError> {
        match self.kind()? {
            Kind::Object => {}
            Kind::Null => {
                self.literal("null")?;
                return Ok(ExtFields::new());
            }
            _ => {
                let text = self.skip_value()?;
                return Err(FrameError::BadHeader(format!(
                    "extFields is not an object: {text}"
                )));
            }
        }
        // Keys and values are most of the object's text: one allocation.
        let mut ext = ExtFields::with_capacity(16, self.bytes.len() - self.pos);
        self.pos += 1;
        self.ws();
        if self.eat(b'}') {
            return Ok(ext);
        }
        loop {
            let key = self.key()?;
            match self.kind()? {
                Kind::String => {
                    let out = ext.begin_value(&key);
                    let done = self.string_into(out);
                    ext.end_value();
                    done?;
                }
                // A field Java would not have sent at all.
                Kind::Null => {
                    self.literal("null")?;
                }
                _ => {
                    let text = self.skip_value()?;
                    ext.insert(&key, text);
                }
            }
            self.ws();
            if self.eat(b',') {
                self.ws();
                continue;
            }
            self.expect(b'}', "expected ',' or '}' in extFields")?;
            return Ok(ext);
        }
    }
}

/// A JSON number as an integer; a fractional one is truncated, as Java's
/// lenient clients' numbers were read before.
fn integer(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Result<RemotingCommand, FrameError> {
        decode(text.as_bytes())
    }

    #[test]
    fn reads_what_java_writes() {
        let cmd = decoded(
            r#"{"code":310,"extFields":{"a":"ProducerGroupA","b":"TopicTest","i":"TAGS\u0001TagA\u0002WAIT\u0001true"},"flag":0,"language":"JAVA","opaque":12,"serializeTypeCurrentRPC":"JSON","version":407}"#,
        )
        .expect("decodes");
        assert_eq!(cmd.code, 310);
        assert_eq!(cmd.opaque, 12);
        assert_eq!(cmd.version, 407);
        assert_eq!(cmd.language, LanguageCode::Java);
        assert_eq!(cmd.get("a"), Some("ProducerGroupA"));
        assert_eq!(cmd.get("i"), Some("TAGS\u{1}TagA\u{2}WAIT\u{1}true"));
        assert_eq!(cmd.remark, None);
    }

    #[test]
    fn writes_what_it_reads() {
        let mut cmd = RemotingCommand::request(10);
        cmd.remark = Some("a \"quoted\"\\ line\n\u{1}é😀".into());
        cmd.put("k", "v\u{1f}\u{7f}").put("e", "");
        let mut out = Vec::new();
        encode(&cmd, &mut out);
        let text = std::str::from_utf8(&out).expect("UTF-8");
        assert!(
            text.contains(r#""remark":"a \"quoted\"\\ line\n\u0001é😀""#),
            "{text}"
        );
        let back = decode(&out).expect("decodes");
        assert_eq!(back, cmd);
        // serde_json reads it too, to the same values.
        let value: serde_json::Value = serde_json::from_slice(&out).expect("standard JSON");
        assert_eq!(value["extFields"]["k"], "v\u{1f}\u{7f}");
        assert_eq!(value["remark"], cmd.remark.as_deref().unwrap());
    }

    #[test]
    fn escapes_and_odd_values() {
        let cmd = decoded(
            " {\"code\" : \"34\" , \"flag\":1.0, \"language\":9, \"remark\":{\"x\":[1,{\"y\":null}]},\
             \"unknown\":[[],{},\"s\",-1.5e3,true], \"extFields\":{\"\\u0041\\ud83d\\ude00\":\"\\/\\b\\f\\t\",\
             \"n\":-12,\"t\":true,\"z\":null,\"o\":{\"p\":1}} }\n",
        )
        .expect("decodes");
        assert_eq!(cmd.code, 34);
        assert_eq!(cmd.flag, 1);
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.remark.as_deref(), Some(r#"{"x":[1,{"y":null}]}"#));
        assert_eq!(cmd.get("A😀"), Some("/\u{8}\u{c}\t"));
        assert_eq!(cmd.get("n"), Some("-12"));
        assert_eq!(cmd.get("t"), Some("true"));
        assert_eq!(cmd.get("z"), None);
        assert_eq!(cmd.get("o"), Some(r#"{"p":1}"#));
        assert_eq!(decoded("{}").expect("empty").language, LanguageCode::Java);
        assert_eq!(
            decoded(r#"{"language":null,"extFields":null,"remark":null,"code":null}"#)
                .expect("nulls")
                .language,
            LanguageCode::Other
        );
    }

    #[test]
    fn broken_json_is_an_error() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"code\"}",
            "{\"code\":}",
            "{\"code\":1,}",
            "{\"code\":1 \"flag\":2}",
            "{code:1}",
            "{\"code\":1}x",
            "{\"remark\":\"open}",
            "{\"remark\":\"tab\there\"}",
            "{\"remark\":\"\\x\"}",
            "{\"remark\":\"\\ud800\"}",
            "{\"remark\":\"\\udc00x\"}",
            "{\"u\":[1,2}",
            "{\"u\":{\"a\" 1}}",
            "{\"u\":{1:2}}",
            "{\"u\":tru}",
            "{\"u\":-}",
            "{\"code\":\"x\"}",
            "{\"code\":4294967296}",
            "{\"code\":true}",
            "{\"extFields\":[]}",
            "{\"extFields\":{\"a\":1,}}",
        ] {
            assert!(
                matches!(decoded(bad), Err(FrameError::BadHeader(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(decode(b"{\"remark\":\"\xff\"}").is_err(), "not UTF-8");
        let deep = format!("{{\"u\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(decoded(&deep).is_err(), "too deep");
        let ok = format!("{{\"u\":{}{}}}", "[".repeat(60), "]".repeat(60));
        assert!(decoded(&ok).is_ok());
    }

    #[test]
    fn never_panics_on_prefixes_or_flipped_bytes() {
        let mut cmd = RemotingCommand::request(310);
        cmd.remark = Some("r\u{1}é".into());
        cmd.put("a", "x\"y").put("b", "12");
        let mut text = Vec::new();
        encode(&cmd, &mut text);
        for cut in 0..text.len() {
            let _ = decode(&text[..cut]);
        }
        for i in 0..text.len() {
            for b in [0u8, b'"', b'\\', b'{', b'}', b',', b':', 0xff, b'[', b'u'] {
                let mut t = text.clone();
                t[i] = b;
                let _ = decode(&t);
            }
        }
    }
}
