//! What every verb shares for results and failures: the error that carries the
//! exit code, `--format` and `--mode`, messages as text and JSON, times,
//! tables, and progress on a terminal. Where the text goes is the
//! [`Console`]'s business.

use std::fmt::{self, Display, Write as _};
use std::str::FromStr;
use std::time::{Duration, Instant};

use mq::{ClientError, MessageExt};

use crate::console::Console;

/// Why a verb stopped early; each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Failed(String),
    /// Standard output was closed (`mqctl consume | head`): stop quietly, exit 0.
    BrokenPipe,
}

impl Failure {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
            Failure::BrokenPipe => 0,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// A usage error (exit 2).
pub fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

/// An operation failure (exit 1).
pub fn failed(msg: impl Into<String>) -> Failure {
    Failure::Failed(msg.into())
}

/// What a verb returns.
pub type Outcome<T = ()> = Result<T, Failure>;

/// `--format`: text for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables and `key=value` lines.
    Text,
    /// JSON (one object per line where results stream).
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// `--mode` of sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wait for the broker's answer.
    Sync,
    /// Send in the background, several in flight; answers come back later.
    Async,
    /// Do not wait for any answer.
    Oneway,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Mode::Sync),
            "async" => Ok(Mode::Async),
            "oneway" => Ok(Mode::Oneway),
            _ => Err("expected sync, async or oneway".into()),
        }
    }
}

pub use mq_protocol::time::now_ms;

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` (UTC); `-` for 0.
pub fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = mq_protocol::time::DateTime::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.milli
    )
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A body for display: the text when it is UTF-8 (control characters escaped,
/// so that one message stays on one line), else `None`.
pub fn body_text(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// A received message as one `key=value` line, body last (`body=` for text,
/// `hex=` for bytes that are not UTF-8).
pub fn message_line(m: &MessageExt) -> String {
    let body = match body_text(&m.body) {
        Some(text) => format!("body={text}"),
        None => format!("hex={}", hex(&m.body)),
    };
    format!(
        "msgId={} queue={}:{} offset={} tags={} keys={} {body}",
        m.msg_id,
        m.broker_name,
        m.queue_id,
        m.queue_offset,
        m.tags().unwrap_or(""),
        m.keys().join(","),
    )
}

/// A received message as a JSON object: `body` holds the text when it is
/// UTF-8 (`bodyEncoding` "utf8"), else lowercase hex (`bodyEncoding` "hex").
pub fn message_json(m: &MessageExt) -> serde_json::Value {
    let (body, encoding) = match std::str::from_utf8(&m.body) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (hex(&m.body), "hex"),
    };
    serde_json::json!({
        "msgId": m.msg_id,
        "offsetMsgId": m.offset_msg_id,
        "topic": m.topic,
        "brokerName": m.broker_name,
        "queueId": m.queue_id,
        "queueOffset": m.queue_offset,
        "commitLogOffset": m.commit_log_offset,
        "tags": m.tags(),
        "keys": m.keys(),
        "flag": m.flag,
        "sysFlag": m.sys_flag,
        "bornTimestamp": m.born_timestamp,
        "bornHost": m.born_host.to_string(),
        "storeTimestamp": m.store_timestamp,
        "storeHost": m.store_host.to_string(),
        "reconsumeTimes": m.reconsume_times,
        "properties": m.properties,
        "body": body,
        "bodyEncoding": encoding,
    })
}

/// A received message in full, one field a line, for `mqctl query`.
pub fn message_detail(m: &MessageExt) -> String {
    let body = match body_text(&m.body) {
        Some(text) => text,
        None => format!("(hex) {}", hex(&m.body)),
    };
    let props: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rows = [
        ("msgId", m.msg_id.clone()),
        ("offsetMsgId", m.offset_msg_id.clone()),
        ("topic", m.topic.clone()),
        ("tags", m.tags().unwrap_or("").to_owned()),
        ("keys", m.keys().join(",")),
        ("queue", format!("{}:{}", m.broker_name, m.queue_id)),
        ("queueOffset", m.queue_offset.to_string()),
        ("commitLogOffset", m.commit_log_offset.to_string()),
        ("reconsumeTimes", m.reconsume_times.to_string()),
        (
            "bornTimestamp",
            format!("{} ({})", m.born_timestamp, format_ms(m.born_timestamp)),
        ),
        ("bornHost", m.born_host.to_string()),
        (
            "storeTimestamp",
            format!("{} ({})", m.store_timestamp, format_ms(m.store_timestamp)),
        ),
        ("storeHost", m.store_host.to_string()),
        ("sysFlag", m.sys_flag.to_string()),
        ("properties", props.join(" ")),
        ("body", body),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        let row = format!("{:<16} {v}", format!("{k}:"));
        let _ = writeln!(out, "{}", row.trim_end());
    }
    out.pop();
    out
}

/// Columns aligned on the widest cell, two spaces apart.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table to standard output.
    pub fn print(&self, console: &Console) -> Outcome {
        console.line(self)
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            let mut text = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ", width = widths[c]);
                }
            }
            f.write_str(text.trim_end())?;
        }
        Ok(())
    }
}

/// A one-line progress report on standard error, redrawn at most ten times a
/// second, shown only when standard error is a terminal.
pub struct Progress<'a> {
    console: &'a Console,
    enabled: bool,
    last: Option<Instant>,
}

impl<'a> Progress<'a> {
    /// A progress line, shown when standard error is a terminal and `wanted`.
    pub fn new(console: &'a Console, wanted: bool) -> Self {
        Progress {
            console,
            enabled: wanted && console.terminals().stderr,
            last: None,
        }
    }

    /// Redraws the line with `text` (rate limited).
    pub fn update(&mut self, text: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.console.draw(&format!("\r\x1b[K{}", text()));
    }

    /// Erases the line.
    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            self.console.draw("\r\x1b[K");
        }
        self.last = None;
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_ms(0), "-");
        assert_eq!(format_ms(1), "1970-01-01 00:00:00.001");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn bodies_stay_on_one_line() {
        assert_eq!(body_text(b"a\nb\tc").unwrap(), "a\\nb\\tc");
        assert_eq!(body_text("h\u{e9}".as_bytes()).unwrap(), "h\u{e9}");
        assert!(body_text(&[0xff, 0x00]).is_none());
        assert_eq!(hex(&[0xff, 0x00, 0x1a]), "ff001a");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["xxx".into(), "y".into()]);
        assert_eq!(t.to_string(), "A    BB\nxxx  y");
    }
}
