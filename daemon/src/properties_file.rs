//! A reader of Java's `.properties` format, as `java.util.Properties.load`
//! reads it from a UTF-8 text: RocketMQ's `broker.conf` and `namesrv.conf`
//! are such files.
//!
//! Hand-written on purpose, one of the rare places where that is right: the
//! crates that read this format either decode the bytes as ISO-8859-1 or
//! Windows-1252 (as `Properties.load(InputStream)` does), which garbles a
//! UTF-8 broker name or path, or bring in a regex engine and a dozen packages
//! for what is a hundred lines of well-specified scanning.
//!
//! The format, as `Properties.load(Reader)` defines it:
//! - A natural line ends at `\n`, `\r` or `\r\n`. A line whose first
//!   non-blank character is `#` or `!` is a comment; a blank line is skipped.
//! - A line ending in an odd number of backslashes continues on the next
//!   one, whose leading blanks (space, tab, form feed) are dropped. Comment
//!   lines never continue.
//! - The key runs from the first non-blank character to the first unescaped
//!   `=`, `:` or blank; then blanks, at most one `=` or `:`, and blanks again
//!   separate it from the value, which is the rest of the line (trailing
//!   blanks included).
//! - In keys and values, `\t`, `\n`, `\r`, `\f` and `\uXXXX` are escapes, and
//!   a backslash before any other character stands for that character.

use thiserror::Error;

/// One key and value, with the line the entry starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped.
    pub value: String,
    /// The line of the file the entry starts on, for messages.
    pub line: usize,
}

/// Why a properties text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PropertiesError {
    /// A `\u` escape not followed by four hexadecimal digits (Java throws
    /// "Malformed \uxxxx encoding" here too).
    #[error("line {line}: malformed \\uxxxx escape")]
    BadUnicodeEscape {
        /// The line the entry starts on.
        line: usize,
    },
}

/// Reads every entry of `text`, in file order; when a key repeats, the last
/// entry is the one `Properties` keeps.
pub fn parse(text: &str) -> Result<Vec<Property>, PropertiesError> {
    let mut entries = Vec::new();
    let mut lines = NaturalLines::new(text);
    while let Some((first_line, mut line)) = lines.next() {
        let trimmed = line.trim_start_matches(is_blank);
        if trimmed.is_empty() || trimmed.starts_with(['#', '!']) {
            continue;
        }
        let mut logical = trimmed.to_owned();
        while ends_with_odd_backslashes(line) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => {
                    line = next;
                    logical.push_str(next.trim_start_matches(is_blank));
                }
                // A backslash at the very end of the file stands for nothing.
                None => break,
            }
        }
        let (raw_key, raw_value) = split_entry(&logical);
        entries.push(Property {
            key: unescape(raw_key, first_line)?,
            value: unescape(raw_value, first_line)?,
            line: first_line,
        });
    }
    Ok(entries)
}

/// Space, tab and form feed: the blanks of the format (not newlines).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line (leading blanks gone) into its raw key and value.
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches(is_blank);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = after.trim_start_matches(is_blank);
    }
    (key, rest)
}

/// Resolves the escapes of a raw key or value.
fn unescape(raw: &str, line: usize) -> Result<String, PropertiesError> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = (hex.len() == 4)
                    .then(|| u16::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or(PropertiesError::BadUnicodeEscape { line })?;
                push_utf16_unit(&mut out, unit, &mut chars, line)?;
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Appends one UTF-16 code unit from a `\u` escape; a high surrogate takes
/// the low one from the `\uXXXX` that must follow (as Java strings pair them).
fn push_utf16_unit(
    out: &mut String,
    unit: u16,
    chars: &mut std::str::Chars<'_>,
    line: usize,
) -> Result<(), PropertiesError> {
    if !(0xD800..0xDC00).contains(&unit) {
        out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
        return Ok(());
    }
    let rest = chars.as_str();
    let low = rest
        .strip_prefix("\\u")
        .and_then(|r| r.get(..4))
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        .filter(|low| (0xDC00..0xE000).contains(low));
    match low {
        Some(low) => {
            let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            *chars = rest[6..].chars();
            Ok(())
        }
        // An unpaired surrogate has no UTF-8 form; Java would keep it.
        None if rest.starts_with("\\u") && rest.len() < 6 => {
            Err(PropertiesError::BadUnicodeEscape { line })
        }
        None => {
            out.push(char::REPLACEMENT_CHARACTER);
            Ok(())
        }
    }
}

/// The natural lines of a text, each with its 1-based number.
struct NaturalLines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> NaturalLines<'a> {
    fn new(text: &'a str) -> Self {
        NaturalLines {
            rest: text.strip_prefix('\u{feff}').unwrap_or(text),
            number: 0,
        }
    }

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        let end = self.rest.find(['\n', '\r']).unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let after = &self.rest[end..];
        self.rest = after
            .strip_prefix("\r\n")
            .or_else(|| after.strip_prefix(['\n', '\r']))
            .unwrap_or(after);
        Some((self.number, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n  \t\na=1\nb:2\nc 3\nd = 4\ne\t:\t5\nf\ng=\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", "5"),
                pair("f", ""),
                pair("g", ""),
            ]
        );
    }

    #[test]
    fn values_keep_trailing_blanks_and_later_separators() {
        assert_eq!(pairs("k = a=b:c  "), vec![pair("k", "a=b:c  ")]);
        assert_eq!(pairs("k==v"), vec![pair("k", "=v")]);
        assert_eq!(pairs("=v"), vec![pair("", "v")]);
    }

    #[test]
    fn utf8_values_are_read_as_utf8() {
        assert_eq!(
            pairs("brokerName=café-東京"),
            vec![pair("brokerName", "café-東京")]
        );
    }

    #[test]
    fn unicode_escapes_and_surrogate_pairs() {
        assert_eq!(pairs("name=caf\\u00e9"), vec![pair("name", "café")]);
        assert_eq!(pairs("k=\\uD83D\\uDE00"), vec![pair("k", "😀")]);
        assert_eq!(
            parse("k=\\u00g1").unwrap_err(),
            PropertiesError::BadUnicodeEscape { line: 1 }
        );
        assert_eq!(
            parse("a=1\nk=\\u12").unwrap_err(),
            PropertiesError::BadUnicodeEscape { line: 2 }
        );
    }

    #[test]
    fn character_escapes_in_keys_and_values() {
        assert_eq!(pairs("a\\=b=c\\:d"), vec![pair("a=b", "c:d")]);
        assert_eq!(pairs("a\\ b=1"), vec![pair("a b", "1")]);
        assert_eq!(
            pairs("k=\\t\\n\\r\\f\\\\\\q"),
            vec![pair("k", "\t\n\r\u{c}\\q")]
        );
    }

    #[test]
    fn continuation_lines() {
        let text = "namesrvAddr=127.0.0.1:9876;\\\n    127.0.0.1:9877\nnext=1\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("namesrvAddr", "127.0.0.1:9876;127.0.0.1:9877"),
                pair("next", "1")
            ]
        );
        // An even number of backslashes is an escaped backslash, not a continuation.
        assert_eq!(
            pairs("k=a\\\\\nj=b"),
            vec![pair("k", "a\\"), pair("j", "b")]
        );
        // A comment line never continues.
        assert_eq!(pairs("# c \\\nk=v"), vec![pair("k", "v")]);
        // CRLF and lone CR end lines too.
        assert_eq!(
            pairs("a=1\r\nb=2\\\r\n  3\rc=4"),
            vec![pair("a", "1"), pair("b", "23"), pair("c", "4")]
        );
        assert_eq!(pairs("k=v\\"), vec![pair("k", "v")]);
    }

    #[test]
    fn entries_carry_their_first_line() {
        let entries = parse("# c\na=1\nb=x\\\n y\nc=3").unwrap();
        let lines: Vec<_> = entries.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(lines, vec![("a", 2), ("b", 3), ("c", 5)]);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        assert_eq!(pairs("\u{feff}a=1"), vec![pair("a", "1")]);
    }
}
