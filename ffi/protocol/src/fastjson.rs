//! fastjson's dialect of JSON: reading what Java RocketMQ 4.9 writes, and writing
//! what it can read back.
//!
//! Java bodies are `JSON.toJSONString(obj)` from fastjson 1.2.69, which is not
//! quite JSON (protocol doc §5.0):
//!
//! | Java map key      | fastjson writes                                   |
//! |-------------------|---------------------------------------------------|
//! | `String`          | `{"TopicA":…}` (standard)                         |
//! | `Long`, `Integer` | `{0:"10.0.0.1:10911"}` (bare number)              |
//! | `MessageQueue`    | `{{"brokerName":"b","queueId":0,"topic":"T"}:42}` |
//!
//! and its parser also takes single-quoted strings, bare identifier keys and
//! trailing commas.
//!
//! **Reading.** [`to_standard`] rewrites such text into standard JSON in one
//! pass with an explicit stack (no recursion, depth capped at [`MAX_DEPTH`]): a
//! bare key becomes a quoted one, and a key that is an object or array becomes a
//! string key holding that key's compact JSON text. serde_json then does the
//! rest ([`from_str`]): integer map keys parse from `"0"` natively, and
//! [`object_keys`] re-parses the text of object keys into the key type.
//!
//! **Writing.** serde_json's serializer can only emit string keys, but it lets a
//! [`Formatter`] decide which bytes surround them. [`to_string`] serializes
//! through a formatter that
//! - leaves integer map keys unquoted, as fastjson does (`{0:"…"}`), and
//! - writes a key produced by [`object_keys`] as its raw JSON text instead of
//!   a string. `object_keys` marks such a key with a thread-local flag that is set
//!   only while it hands serde_json the key text it generated itself, so no
//!   string that came from input can ever be written raw (no injection).
//!
//! Plain `serde_json::to_string` on the same types still works and gives the
//! standard form (`"0"`, `"{\"brokerName\":…}"`), which [`from_str`] reads back.
//! This was chosen over hand-written encoders per body (every field order and
//! escape would be duplicated) and over placeholder keys patched in the output
//! text afterwards (a peer-chosen string could imitate a placeholder).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};
use thiserror::Error;

/// Deepest nesting of objects and arrays [`to_standard`] accepts. RocketMQ
/// bodies nest at most five levels; the cap keeps hostile input from costing
/// unbounded memory, and stays below serde_json's own limit of 128.
pub const MAX_DEPTH: usize = 100;

/// How many object-or-array keys may nest inside one another. Java writes one
/// level (a `MessageQueue` key); each level can double the output size.
const MAX_KEY_NESTING: usize = 3;

/// Why fastjson text could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FastJsonError {
    /// The text is not JSON, not even by fastjson's relaxed rules.
    #[error("bad JSON at byte {offset}: {reason}")]
    Syntax {
        /// Byte offset in the input where reading stopped.
        offset: usize,
        /// What was expected or found there.
        reason: &'static str,
    },
    /// Objects and arrays are nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep {
        /// Byte offset of the opening bracket that went too deep.
        offset: usize,
    },
    /// The text is well-formed but does not fit the target type (missing or
    /// mistyped field). Line and column refer to the standardized text, which
    /// is the input without whitespace.
    #[error("JSON does not fit the expected type: {0}")]
    Shape(#[source] serde_json::Error),
}

/// Parses fastjson text (or standard JSON) into `T`.
pub fn from_str<T: DeserializeOwned>(input: &str) -> Result<T, FastJsonError> {
    let standard = to_standard(input)?;
    serde_json::from_str(&standard).map_err(FastJsonError::Shape)
}

/// Rewrites fastjson text into compact standard JSON.
///
/// - A bare key (`0`, `-1`, `name`) becomes a quoted key (`"0"`).
/// - An object or array used as a key becomes a string key holding its compact
///   JSON text: `{{"a":1}:2}` becomes `{"{\"a\":1}":2}`.
/// - Double-quoted strings are copied with their escapes; single-quoted ones
///   become double-quoted. `\xHH` and `\'` escapes, raw control characters and
///   unpaired surrogate escapes (which serde_json rejects) are rewritten.
/// - Trailing commas before `}` or `]` are dropped, whitespace outside strings
///   is dropped, a leading byte-order mark is skipped.
///
/// Whatever the input, this never panics, uses memory linear in the input,
/// and on success returns text that serde_json accepts.
pub fn to_standard(input: &str) -> Result<String, FastJsonError> {
    Rewriter::new(input).run()
}

/// Where the reader is inside one open object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ObjectState {
    /// Just after `{`: a key or `}`.
    First,
    /// Just after `,`: a key, or `}` (a trailing comma, dropped).
    AfterComma,
    /// After a key: `:`.
    Colon,
    /// After `:`: a value.
    Value,
    /// After a value: `,` or `}`.
    Next,
}

/// Where the reader is inside one open array.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ArrayState {
    /// Just after `[`: a value or `]`.
    First,
    /// Just after `,`: a value, or `]` (a trailing comma, dropped).
    AfterComma,
    /// After a value: `,` or `]`.
    Next,
}

#[derive(Clone, Copy, Debug)]
enum Container {
    Object(ObjectState),
    Array(ArrayState),
}

/// One open object or array.
#[derive(Debug)]
struct Frame {
    container: Container,
    /// This container is an object key: its text goes to a buffer of its own,
    /// written into the parent as a string when it closes.
    is_key: bool,
}

/// The single-pass rewriter behind [`to_standard`].
struct Rewriter<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Frame>,
    /// Where output goes now.
    out: String,
    /// Outer buffers, saved while the text of an object key is collected.
    saved: Vec<String>,
    /// The top-level value has started; after it only whitespace may follow.
    started: bool,
}

impl<'a> Rewriter<'a> {
    fn new(src: &'a str) -> Self {
        Rewriter {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            stack: Vec::new(),
            out: String::with_capacity(src.len() + 16),
            saved: Vec::new(),
            started: false,
        }
    }

    fn syntax(&self, reason: &'static str) -> FastJsonError {
        FastJsonError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    fn run(mut self) -> Result<String, FastJsonError> {
        if self.src.starts_with('\u{feff}') {
            self.pos = '\u{feff}'.len_utf8();
        }
        loop {
            self.skip_whitespace();
            let Some(&byte) = self.bytes.get(self.pos) else {
                if self.started && self.stack.is_empty() {
                    return Ok(self.out);
                }
                return Err(self.syntax("unexpected end of input"));
            };
            let Some(frame) = self.stack.last_mut() else {
                if self.started {
                    return Err(self.syntax("unexpected text after the value"));
                }
                self.started = true;
                self.value(byte)?;
                continue;
            };
            match frame.container {
                Container::Object(state) => self.in_object(state, byte)?,
                Container::Array(state) => self.in_array(state, byte)?,
            }
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn set_state(&mut self, container: Container) {
        if let Some(frame) = self.stack.last_mut() {
            frame.container = container;
        }
    }

    fn in_object(&mut self, state: ObjectState, byte: u8) -> Result<(), FastJsonError> {
        match (state, byte) {
            (ObjectState::First | ObjectState::AfterComma, b'}') => self.close(b'}'),
            (ObjectState::First | ObjectState::AfterComma, _) => {
                if state == ObjectState::AfterComma {
                    self.out.push(',');
                }
                // Set before reading, so a key that is itself an object leaves
                // its parent expecting the colon once it closes.
                self.set_state(Container::Object(ObjectState::Colon));
                self.key(byte)
            }
            (ObjectState::Colon, b':') => {
                self.pos += 1;
                self.out.push(':');
                self.set_state(Container::Object(ObjectState::Value));
                Ok(())
            }
            (ObjectState::Colon, _) => Err(self.syntax("expected ':' after an object key")),
            (ObjectState::Value, _) => {
                self.set_state(Container::Object(ObjectState::Next));
                self.value(byte)
            }
            (ObjectState::Next, b',') => {
                self.pos += 1;
                self.set_state(Container::Object(ObjectState::AfterComma));
                Ok(())
            }
            (ObjectState::Next, b'}') => self.close(b'}'),
            (ObjectState::Next, _) => Err(self.syntax("expected ',' or '}' in an object")),
        }
    }

    fn in_array(&mut self, state: ArrayState, byte: u8) -> Result<(), FastJsonError> {
        match (state, byte) {
            (ArrayState::First | ArrayState::AfterComma, b']') => self.close(b']'),
            (ArrayState::First | ArrayState::AfterComma, _) => {
                if state == ArrayState::AfterComma {
                    self.out.push(',');
                }
                self.set_state(Container::Array(ArrayState::Next));
                self.value(byte)
            }
            (ArrayState::Next, b',') => {
                self.pos += 1;
                self.set_state(Container::Array(ArrayState::AfterComma));
                Ok(())
            }
            (ArrayState::Next, b']') => self.close(b']'),
            (ArrayState::Next, _) => Err(self.syntax("expected ',' or ']' in an array")),
        }
    }

    fn open(&mut self, byte: u8, is_key: bool) -> Result<(), FastJsonError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(FastJsonError::TooDeep { offset: self.pos });
        }
        if is_key {
            // Each level of keys inside keys escapes the inner text once more,
            // doubling its backslashes: unbounded, that is exponential output.
            if self.saved.len() >= MAX_KEY_NESTING {
                return Err(self.syntax("object keys nested too deeply inside object keys"));
            }
            self.saved.push(std::mem::take(&mut self.out));
        }
        let container = if byte == b'{' {
            Container::Object(ObjectState::First)
        } else {
            Container::Array(ArrayState::First)
        };
        self.stack.push(Frame { container, is_key });
        self.out.push(char::from(byte));
        self.pos += 1;
        Ok(())
    }

    fn close(&mut self, byte: u8) -> Result<(), FastJsonError> {
        self.pos += 1;
        self.out.push(char::from(byte));
        let Some(frame) = self.stack.pop() else {
            return Err(self.syntax("unbalanced bracket"));
        };
        if frame.is_key {
            debug_assert!(
                !self.saved.is_empty(),
                "a key frame saved its parent buffer"
            );
            let key = std::mem::replace(&mut self.out, self.saved.pop().unwrap_or_default());
            push_json_string(&mut self.out, &key);
        }
        Ok(())
    }

    /// Reads an object key starting at `byte`.
    fn key(&mut self, byte: u8) -> Result<(), FastJsonError> {
        match byte {
            b'"' | b'\'' => self.string(byte),
            b'{' | b'[' => self.open(byte, true),
            _ => {
                // A bare key: fastjson writes numbers so, and reads identifiers.
                let start = self.pos;
                while let Some(&b) = self.bytes.get(self.pos) {
                    if matches!(
                        b,
                        b' ' | b'\t'
                            | b'\n'
                            | b'\r'
                            | b'\x0c'
                            | b':'
                            | b','
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                            | b'"'
                            | b'\''
                    ) {
                        break;
                    }
                    self.pos += 1;
                }
                // Only ASCII bytes stop the scan, so both ends are char boundaries.
                match self.src.get(start..self.pos) {
                    Some(word) if !word.is_empty() => {
                        push_json_string(&mut self.out, word);
                        Ok(())
                    }
                    _ => Err(self.syntax("expected an object key")),
                }
            }
        }
    }

    /// Reads a value starting at `byte`; for `{` and `[` only opens it.
    fn value(&mut self, byte: u8) -> Result<(), FastJsonError> {
        match byte {
            b'"' | b'\'' => self.string(byte),
            b'{' | b'[' => self.open(byte, false),
            b'-' | b'0'..=b'9' => self.number(),
            b'a'..=b'z' | b'A'..=b'Z' => {
                let start = self.pos;
                while let Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') =
                    self.bytes.get(self.pos)
                {
                    self.pos += 1;
                }
                let word = match self.src.get(start..self.pos) {
                    Some(w @ ("true" | "false" | "null")) => w,
                    // fastjson reads JavaScript's `undefined` as null.
                    Some("undefined") => "null",
                    _ => {
                        self.pos = start;
                        return Err(self.syntax("unknown word where a value was expected"));
                    }
                };
                self.out.push_str(word);
                Ok(())
            }
            _ => Err(self.syntax("expected a value")),
        }
    }

    /// Copies a number after checking it against JSON's grammar, so the output
    /// is always valid JSON: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), FastJsonError> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax("expected a digit")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.syntax("expected a digit after '.'"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.syntax("expected a digit in the exponent"));
            }
            self.digits();
        }
        if let Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'_') =
            self.bytes.get(self.pos)
        {
            return Err(self.syntax("malformed number"));
        }
        match self.src.get(start..self.pos) {
            Some(text) => {
                self.out.push_str(text);
                Ok(())
            }
            None => Err(self.syntax("malformed number")),
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Copies a string quoted by `quote` (`"` or `'`) as a double-quoted one.
    fn string(&mut self, quote: u8) -> Result<(), FastJsonError> {
        self.pos += 1;
        self.out.push('"');
        loop {
            // Copy the run up to the next byte needing attention in one go.
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == quote || b == b'\\' || b == b'"' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run ends at an ASCII byte or the end: both are char boundaries.
            if let Some(run) = self.src.get(run_start..self.pos) {
                self.out.push_str(run);
            }
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.syntax("unterminated string"));
            };
            if b == quote {
                self.pos += 1;
                self.out.push('"');
                return Ok(());
            }
            match b {
                // Only reachable inside a single-quoted string.
                b'"' => {
                    self.pos += 1;
                    self.out.push_str("\\\"");
                }
                b'\\' => self.escape()?,
                _ => {
                    // A raw control character: JSON wants it escaped.
                    self.pos += 1;
                    push_control_escape(&mut self.out, b);
                }
            }
        }
    }

    /// Handles the escape sequence at `self.pos` (which is at the backslash).
    fn escape(&mut self) -> Result<(), FastJsonError> {
        let Some(&kind) = self.bytes.get(self.pos + 1) else {
            return Err(self.syntax("unterminated string"));
        };
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.out.push('\\');
                self.out.push(char::from(kind));
                self.pos += 2;
            }
            b'\'' => {
                self.out.push('\'');
                self.pos += 2;
            }
            b'x' => {
                let Some(value) = self.hex(self.pos + 2, 2) else {
                    return Err(self.syntax("bad \\x escape"));
                };
                self.pos += 4;
                push_unicode_escape(&mut self.out, value);
            }
            b'u' => {
                let Some(unit) = self.hex(self.pos + 2, 4) else {
                    return Err(self.syntax("bad \\u escape"));
                };
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // serde_json rejects unpaired surrogates; Java strings may
                        // hold them. Keep a proper pair, replace a lone half.
                        let low = if self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u") {
                            self.hex(self.pos + 2, 4)
                        } else {
                            None
                        };
                        match low {
                            Some(low @ 0xDC00..=0xDFFF) => {
                                self.pos += 6;
                                push_unicode_escape(&mut self.out, unit);
                                push_unicode_escape(&mut self.out, low);
                            }
                            _ => push_unicode_escape(&mut self.out, 0xFFFD),
                        }
                    }
                    0xDC00..=0xDFFF => push_unicode_escape(&mut self.out, 0xFFFD),
                    _ => push_unicode_escape(&mut self.out, unit),
                }
            }
            _ => return Err(self.syntax("unknown escape in a string")),
        }
        Ok(())
    }

    /// The value of `len` hex digits at `at`, if they are all there.
    fn hex(&self, at: usize, len: usize) -> Option<u32> {
        let digits = self.bytes.get(at..at.checked_add(len)?)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            let v = char::from(d).to_digit(16)?;
            Some(acc * 16 + v)
        })
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => push_unicode_escape(out, u32::from(c)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_control_escape(out: &mut String, byte: u8) {
    push_unicode_escape(out, u32::from(byte));
}

/// Appends `\uXXXX` for a UTF-16 code unit.
fn push_unicode_escape(out: &mut String, unit: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        let digit = usize::try_from((unit >> shift) & 0xF).unwrap_or(0);
        out.push(char::from(HEX[digit]));
    }
}

// ---------------------------------------------------------------------------
// Writing

thread_local! {
    /// Set by [`object_keys`] only while it passes serde_json the JSON text of
    /// one map key; tells [`FastJsonFormatter`] to write that key unquoted.
    static RAW_KEY: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`RAW_KEY`] for its lifetime, so an error mid-key cannot leave it set.
struct RawKeyGuard;

impl RawKeyGuard {
    fn enter() -> Self {
        RAW_KEY.with(|flag| flag.set(true));
        RawKeyGuard
    }
}

impl Drop for RawKeyGuard {
    fn drop(&mut self) {
        RAW_KEY.with(|flag| flag.set(false));
    }
}

/// How the map key being written is quoted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyQuote {
    /// Not inside a key's string.
    None,
    /// The key's opening quote is held back until we know what the key is.
    Pending,
    /// Text key: the quote was written.
    Quoted,
    /// Numeric key: written bare.
    Bare,
    /// Object key from [`object_keys`]: its JSON text, unescaped and unquoted.
    Raw,
}

/// A serde_json formatter that writes map keys the way fastjson does; layout
/// (compact or pretty) comes from the wrapped formatter.
struct FastJsonFormatter<F> {
    inner: F,
    in_key: bool,
    quote: KeyQuote,
}

impl<F: Formatter> FastJsonFormatter<F> {
    fn new(inner: F) -> Self {
        FastJsonFormatter {
            inner,
            in_key: false,
            quote: KeyQuote::None,
        }
    }

    /// Writes the held-back opening quote: the key turned out to be text.
    fn flush_quote<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.quote == KeyQuote::Pending {
            self.quote = KeyQuote::Quoted;
            writer.write_all(b"\"")?;
        }
        Ok(())
    }

    /// A number is being written: if it is a key, it stays bare.
    fn number_key(&mut self) {
        if self.quote == KeyQuote::Pending {
            self.quote = KeyQuote::Bare;
        }
    }
}

macro_rules! number_writers {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: $ty) -> io::Result<()> {
                self.number_key();
                self.inner.$method(writer, value)
            }
        )*
    };
}

macro_rules! delegate_layout {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<W: ?Sized + io::Write>(&mut self, writer: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                self.inner.$method(writer $(, $arg)*)
            }
        )*
    };
}

impl<F: Formatter> Formatter for FastJsonFormatter<F> {
    number_writers!(
        write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128,
        write_f32: f32, write_f64: f64,
    );

    delegate_layout!(
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_value(),
        end_object_value(),
    );

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.in_key = true;
        self.inner.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.in_key = false;
        self.inner.end_object_key(writer)
    }

    fn write_bool<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: bool) -> io::Result<()> {
        self.flush_quote(writer)?;
        self.inner.write_bool(writer, value)
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if !self.in_key {
            return self.inner.begin_string(writer);
        }
        self.quote = if RAW_KEY.with(Cell::get) {
            KeyQuote::Raw
        } else {
            KeyQuote::Pending
        };
        Ok(())
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        let quote = std::mem::replace(&mut self.quote, KeyQuote::None);
        match quote {
            KeyQuote::None | KeyQuote::Quoted => self.inner.end_string(writer),
            // An empty text key: nothing was written between the quotes.
            KeyQuote::Pending => writer.write_all(b"\"\""),
            KeyQuote::Bare | KeyQuote::Raw => Ok(()),
        }
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.flush_quote(writer)?;
        self.inner.write_string_fragment(writer, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        if self.quote == KeyQuote::Raw {
            // Undo serde_json's escaping: the raw key is JSON text it produced.
            let byte = match char_escape {
                CharEscape::Quote => b'"',
                CharEscape::ReverseSolidus => b'\\',
                CharEscape::Solidus => b'/',
                CharEscape::Backspace => b'\x08',
                CharEscape::FormFeed => b'\x0c',
                CharEscape::LineFeed => b'\n',
                CharEscape::CarriageReturn => b'\r',
                CharEscape::Tab => b'\t',
                CharEscape::AsciiControl(byte) => byte,
            };
            return writer.write_all(&[byte]);
        }
        self.flush_quote(writer)?;
        self.inner.write_char_escape(writer, char_escape)
    }
}

/// Serializes `value` as fastjson does: integer map keys bare, [`object_keys`]
/// maps with inline object keys, compact.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, FastJsonFormatter::new(CompactFormatter));
    value.serialize(&mut ser)?;
    Ok(out)
}

/// [`to_vec`] as a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let bytes = to_vec(value)?;
    // The formatter only ever writes whole `str` fragments and ASCII.
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Like [`to_string`], indented with tabs, for files people read
/// (`topics.json`, `consumerOffset.json`). Java's pretty form writes `"k":v`
/// where this writes `"k": v`; both read the same.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let formatter = FastJsonFormatter::new(PrettyFormatter::with_indent(b"\t"));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// A map key that [`to_string`] writes as inline JSON, not as a string.
struct RawKey<'a, K>(&'a K);

impl<K: Serialize> Serialize for RawKey<'_, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Produce the text before raising the flag, so nothing serialized
        // here can see it.
        let text = serde_json::to_string(self.0).map_err(serde::ser::Error::custom)?;
        let _raw = RawKeyGuard::enter();
        serializer.serialize_str(&text)
    }
}

/// `#[serde(with = "fastjson::object_keys")]` for a `BTreeMap<K, V>` whose keys
/// are structs (Java `Map<MessageQueue, V>`).
///
/// Through [`to_string`] the keys are written as inline objects, the only form
/// fastjson reads back into a `MessageQueue`; through plain serde_json they are
/// strings holding the key's JSON. Reading takes either (after [`to_standard`],
/// an inline object key is such a string).
pub mod object_keys {
    use super::{BTreeMap, RawKey};
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the map with each key as [`super::to_string`]'s raw JSON key.
    pub fn serialize<K, V, S>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        serializer.collect_map(map.iter().map(|(k, v)| (RawKey(k), v)))
    }

    /// Reads a map whose keys are strings holding each key's JSON text.
    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: DeserializeOwned + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let texts = BTreeMap::<String, V>::deserialize(deserializer)?;
        let mut map = BTreeMap::new();
        for (text, value) in texts {
            let key = super::from_str::<K>(&text)
                .map_err(|e| D::Error::custom(format_args!("bad map key {text:?}: {e}")))?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;

    fn std_of(input: &str) -> String {
        match to_standard(input) {
            Ok(s) => s,
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    #[test]
    fn bare_numeric_keys_become_quoted() {
        assert_eq!(
            std_of(r#"{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}}"#),
            r#"{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}}"#
        );
        assert_eq!(std_of("{-1:2, name : 3}"), r#"{"-1":2,"name":3}"#);
    }

    #[test]
    fn object_keys_become_string_keys_with_compact_json() {
        let text = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:42}}"#;
        let out = std_of(text);
        assert_eq!(
            out,
            r#"{"offsetTable":{"{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"T\"}":42}}"#
        );
        // Nested non-standard keys inside a key, and array keys.
        assert_eq!(
            std_of(r#"{ { a : { 1 : 2 } } : [ 1 ] , [1, 2,] : 0 }"#),
            r#"{"{\"a\":{\"1\":2}}":[1],"[1,2]":0}"#
        );
    }

    #[test]
    fn strings_pass_through_with_escapes() {
        let text = r#"{"a":"x\"y\\z\/\n\u00e9\ud83d\ude00é{}:,'"}"#;
        assert_eq!(std_of(text), text);
        let v: Value = from_str(text).expect("parses");
        assert_eq!(v["a"], "x\"y\\z/\né😀é{}:,'");
    }

    #[test]
    fn single_quotes_trailing_commas_and_oddities() {
        assert_eq!(std_of(r#"{'a':'b"c\'d',}"#), r#"{"a":"b\"c'd"}"#);
        assert_eq!(std_of("[1,2,]"), "[1,2]");
        assert_eq!(std_of("\u{feff} [ ] \n"), "[]");
        assert_eq!(std_of(r#""\x41""#), r#""\u0041""#);
        assert_eq!(std_of("\"a\tb\""), r#""a\u0009b""#);
        assert_eq!(std_of(r#"["\ud800x","\udc00"]"#), r#"["\ufffdx","\ufffd"]"#);
        assert_eq!(
            std_of("[undefined,true,false,null]"),
            "[null,true,false,null]"
        );
        assert_eq!(std_of("-0.5e+3"), "-0.5e+3");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "[1 2]",
            "[,]",
            "{,}",
            "01",
            "1.",
            "1e",
            "tru",
            "nope",
            "\"abc",
            "\"\\q\"",
            "\"\\u12\"",
            "[]]",
            "{} {}",
            "{:1}",
        ] {
            assert!(to_standard(bad).is_err(), "{bad:?} accepted");
        }
        let Err(FastJsonError::Syntax { offset, .. }) = to_standard("[1,2 x]") else {
            panic!("expected a syntax error");
        };
        assert_eq!(offset, 5);
    }

    #[test]
    fn depth_is_bounded() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(to_standard(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            to_standard(&deep),
            Err(FastJsonError::TooDeep { offset }) if offset == MAX_DEPTH
        ));
        // A huge nesting is refused without recursion, whether in values or keys.
        let values = "{\"a\":".repeat(100_000);
        assert!(matches!(
            to_standard(&values),
            Err(FastJsonError::TooDeep { .. })
        ));
        assert!(to_standard(&"{".repeat(100_000)).is_err());
    }

    #[test]
    fn keys_inside_keys_are_bounded() {
        let nested = |n: usize| "{".repeat(n) + "\"a\":1" + &"}:1".repeat(n - 1) + "}";
        let out = std_of(&nested(MAX_KEY_NESTING + 1));
        assert!(out.len() < 64, "{out}");
        let v: Value = from_str(&nested(2)).expect("parses");
        assert_eq!(v, serde_json::json!({"{\"a\":1}": 1}));
        assert!(matches!(
            to_standard(&nested(MAX_KEY_NESTING + 2)),
            Err(FastJsonError::Syntax { .. })
        ));
        // The same brackets as values are fine: only key nesting is capped.
        assert!(to_standard(&format!("{}1{}", "[".repeat(50), "]".repeat(50))).is_ok());
    }

    /// Checks the promise of [`to_standard`]: no panic, and success means
    /// serde_json accepts the output.
    fn check_total(input: &str) {
        if let Ok(out) = to_standard(input) {
            if let Err(e) = serde_json::from_str::<Value>(&out) {
                panic!("{input:?} gave invalid JSON {out:?}: {e}");
            }
        }
    }

    #[test]
    fn never_panics_on_prefixes() {
        let samples = [
            r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"x"}}],"filterServerTable":{},}"#,
            r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":120}}}"#,
            r#"{'a':'\'\"\x41\u00e9\ud83d\ude00', b: [1.5e-3, -0, true, null, undefined,],}"#,
            "\u{feff}{\"é😀\":\"\\uD800\\uDC00\"}",
        ];
        for sample in samples {
            for (i, _) in sample.char_indices() {
                check_total(&sample[..i]);
                check_total(&sample[i..]);
            }
            check_total(sample);
        }
    }

    #[test]
    fn never_panics_on_random_text() {
        // xorshift: deterministic, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "{}[]:,\"'\\ 0123456789-+.eEtrunlfasxu\u{e9}\u{1f600}\n\t"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = usize::try_from(next() % 40).unwrap_or(0);
            let text: String = (0..len)
                .map(|_| {
                    let i = usize::try_from(next() % alphabet.len() as u64).unwrap_or(0);
                    alphabet[i]
                })
                .collect();
            check_total(&text);
        }
        for _ in 0..5_000 {
            let len = usize::try_from(next() % 64).unwrap_or(0);
            let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            check_total(&String::from_utf8_lossy(&bytes));
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
    #[serde(rename_all = "camelCase")]
    struct Key {
        broker_name: String,
        queue_id: i32,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(with = "object_keys")]
        by_key: BTreeMap<Key, i64>,
        by_id: BTreeMap<i64, String>,
        by_name: BTreeMap<String, i32>,
    }

    fn sample_body() -> Body {
        Body {
            by_key: [
                (
                    Key {
                        broker_name: "b\"x".into(),
                        queue_id: 1,
                    },
                    7,
                ),
                (
                    Key {
                        broker_name: "a".into(),
                        queue_id: 0,
                    },
                    -3,
                ),
            ]
            .into_iter()
            .collect(),
            by_id: [(0, "m".to_string()), (-2, "s".to_string())]
                .into_iter()
                .collect(),
            by_name: [("12".to_string(), 1), (String::new(), 2)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn writes_fastjson_keys() {
        let text = to_string(&sample_body()).expect("serializes");
        assert_eq!(
            text,
            r#"{"byKey":{{"brokerName":"a","queueId":0}:-3,{"brokerName":"b\"x","queueId":1}:7},"byId":{-2:"s",0:"m"},"byName":{"":2,"12":1}}"#
        );
        let back: Body = from_str(&text).expect("reads back");
        assert_eq!(back, sample_body());
    }

    #[test]
    fn standard_serde_json_form_reads_back() {
        let text = serde_json::to_string(&sample_body()).expect("serializes");
        assert!(text.contains(r#""{\"brokerName\":\"a\",\"queueId\":0}":-3"#));
        assert!(text.contains(r#""-2":"s""#));
        let back: Body = from_str(&text).expect("reads back");
        assert_eq!(back, sample_body());
    }

    #[test]
    fn pretty_form_reads_back() {
        let text = to_string_pretty(&sample_body()).expect("serializes");
        assert!(text.contains("\n\t\"byId\": {\n\t\t-2: \"s\""), "{text}");
        let back: Body = from_str(&text).expect("reads back");
        assert_eq!(back, sample_body());
    }

    #[test]
    fn raw_flag_does_not_leak_into_values() {
        // A value string that looks like JSON stays a string.
        let map: BTreeMap<String, String> = [("{\"a\":1}".to_string(), "{\"b\":2}".to_string())]
            .into_iter()
            .collect();
        let text = to_string(&map).expect("serializes");
        assert_eq!(text, r#"{"{\"a\":1}":"{\"b\":2}"}"#);
        assert!(!RAW_KEY.with(Cell::get));
    }
}
