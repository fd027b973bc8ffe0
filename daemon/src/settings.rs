//! A daemon's settings as one table of keys, and a configuration built from
//! defaults, a Java properties file and command-line overrides that remembers
//! where every value came from.
//!
//! Each key is one [`Setting`]: its name (RocketMQ's, where RocketMQ has the
//! setting), its documented default, what it means, and how it is set and
//! read back. The README's configuration table, GET_BROKER_CONFIG,
//! `--print-config` and the checks of a file all come from that one table, so
//! adding a key is adding one entry.
//!
//! A value that does not parse is refused with the file, the line and the
//! reason; a key no table knows is warned about with its file and line
//! (RocketMQ ignores such keys silently, which hides typos) and kept.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration key of a settings type `C`.
pub struct Setting<C> {
    /// The key, as written in the file and as `--key value`.
    pub key: &'static str,
    /// The default, as documented (a value, or how it is derived).
    pub default: &'static str,
    /// What it does; `(mq)` marks a key RocketMQ does not have.
    pub meaning: &'static str,
    /// Parses a value into the settings; the error says why it is refused.
    pub set: fn(&mut C, &str) -> Result<(), String>,
    /// The value in effect, as it would be written in the file.
    pub get: fn(&C) -> String,
}

/// Settings read through a table of [`Setting`]s.
pub trait Configurable: Default + 'static {
    /// What the settings configure, for messages ("broker", "NameServer").
    const NAME: &'static str;
    /// Every key.
    fn settings() -> &'static [Setting<Self>];
    /// Keeps a key the table does not have; `true` if it is one the daemon
    /// knows and ignores on purpose (no warning then).
    fn keep_unknown(&mut self, key: &str, value: &str) -> bool;
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    Default,
    /// A line of a configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// The line the entry starts on.
        line: usize,
    },
    /// A command-line option.
    CommandLine,
    /// An environment variable.
    Environment(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::CommandLine => f.write_str("command line"),
            Source::Environment(name) => write!(f, "environment {name}"),
        }
    }
}

/// Settings being built, with the source of every value set so far.
pub struct Layered<C: Configurable> {
    config: C,
    sources: BTreeMap<&'static str, Source>,
}

impl<C: Configurable> Default for Layered<C> {
    fn default() -> Self {
        Layered {
            config: C::default(),
            sources: BTreeMap::new(),
        }
    }
}

impl<C: Configurable> Layered<C> {
    /// Applies every entry of the properties file at `path`, in file order.
    pub fn read_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.apply_text(&text, path)
    }

    /// Applies the entries of a properties text, reporting lines as of `path`.
    pub fn apply_text(&mut self, text: &str, path: &Path) -> Result<(), String> {
        let entries =
            crate::properties_file::parse(text).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries {
            let source = Source::File {
                path: path.to_owned(),
                line: entry.line,
            };
            self.set(&entry.key, &entry.value, source)?;
        }
        Ok(())
    }

    /// Sets one key from `source`. A bad value is an error naming the source;
    /// an unknown key is logged with it and kept.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), String> {
        match C::settings().iter().find(|s| s.key == key) {
            Some(setting) => {
                (setting.set)(&mut self.config, value)
                    .map_err(|reason| format!("{}: {key}: {reason}", source_label(&source)))?;
                self.sources.insert(setting.key, source);
            }
            None => {
                if !self.config.keep_unknown(key, value) {
                    log::warn!(
                        "{}: unknown {} key {key:?} (ignored){}",
                        source_label(&source),
                        C::NAME,
                        suggestion::<C>(key)
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether `key` was set by anyone.
    pub fn is_set(&self, key: &str) -> bool {
        self.sources.contains_key(key)
    }

    /// Where the value of `key` came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// The settings.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The settings, to adjust or validate.
    pub fn config_mut(&mut self) -> &mut C {
        &mut self.config
    }

    /// The settings, done.
    pub fn into_config(self) -> C {
        self.config
    }

    /// A validation error with the source of every key it names, so that a
    /// conflict between keys points at the lines that made it.
    pub fn explain(&self, error: &str) -> String {
        let named: Vec<String> = C::settings()
            .iter()
            .filter(|s| mentions(error, s.key))
            .map(|s| format!("{} from {}", s.key, self.source(s.key)))
            .collect();
        if named.is_empty() {
            error.to_owned()
        } else {
            format!("{error} ({})", named.join("; "))
        }
    }

    /// Every key with its value in effect and its source, as columns.
    pub fn render(&self) -> String {
        let rows: Vec<(&str, String, String)> = C::settings()
            .iter()
            .map(|s| (s.key, (s.get)(&self.config), self.source(s.key).to_string()))
            .collect();
        let key_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let value_width = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        let mut out = String::new();
        for (key, value, source) in rows {
            let shown = if value.is_empty() { "-" } else { &value };
            out.push_str(&format!(
                "{key:<key_width$}  {shown:<value_width$}  {source}\n"
            ));
        }
        out
    }
}

/// The rows of the README's settings table for `C`'s keys: what they
/// configure, key, default, meaning.
pub fn markdown_rows<C: Configurable>() -> String {
    C::settings()
        .iter()
        .map(|s| {
            format!(
                "| {} | `{}` | {} | {} |\n",
                C::NAME,
                s.key,
                s.default,
                s.meaning
            )
        })
        .collect()
}

/// Checks that every documented default that is a plain value is the value
/// `C::default()` has (derived defaults are written `(like this)` or
/// `` `like this` ``), and that the README holds the table of `C`'s keys.
#[cfg(test)]
pub(crate) fn check_table<C: Configurable>() {
    let defaults = C::default();
    for s in C::settings() {
        if !s.default.starts_with(['(', '`']) {
            assert_eq!((s.get)(&defaults), s.default, "the default of {}", s.key);
        }
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let rows = markdown_rows::<C>();
    assert!(
        readme.contains(&rows),
        "README.md lacks the {} settings table, or it is stale; it should hold:\n{rows}",
        C::NAME
    );
}

/// Whether `text` names `key` as a whole word.
fn mentions(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn source_label(source: &Source) -> String {
    match source {
        Source::CommandLine => "command line".into(),
        other => other.to_string(),
    }
}

/// ", did you mean X?" when a known key differs only in letter case, the
/// commonest typo in a camel-case name.
fn suggestion<C: Configurable>(key: &str) -> String {
    C::settings()
        .iter()
        .find(|s| s.key.eq_ignore_ascii_case(key))
        .map(|s| format!("; did you mean {}?", s.key))
        .unwrap_or_default()
}

/// Parses a value of any `FromStr` type, refusing it with what it is not.
pub fn parse<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a valid {}", value.trim(), kind::<T>()))
}

fn kind<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "u16" => "number from 0 to 65535",
        "u32" => "number from 0 to 4294967295",
        "i32" => "number from -2147483648 to 2147483647",
        "u64" | "usize" => "non-negative number",
        "i64" => "number",
        "core::net::ip_addr::IpAddr" => "IP address",
        _ => "value",
    }
}

/// `true` or `false`, in any letter case, as Java's `Boolean.parseBoolean`
/// reads them (but refusing anything else instead of reading it as false).
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A number of milliseconds.
pub fn parse_millis(value: &str) -> Result<std::time::Duration, String> {
    parse::<u64>(value).map(std::time::Duration::from_millis)
}

/// `serverMaxConnections`: a positive number of connections.
pub fn parse_connection_limit(value: &str) -> Result<usize, String> {
    match parse::<usize>(value)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// `metricsPort`: a port, or 0 (as absent) for no endpoint.
pub fn parse_port_or_off(value: &str) -> Result<Option<u16>, String> {
    Ok(Some(parse::<u16>(value)?).filter(|p| *p != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug)]
    struct Demo {
        port: u16,
        flag: bool,
        other: Vec<String>,
    }

    static DEMO: [Setting<Demo>; 2] = [
        Setting {
            key: "listenPort",
            default: "0",
            meaning: "a port",
            set: |c, v| {
                c.port = parse(v)?;
                Ok(())
            },
            get: |c| c.port.to_string(),
        },
        Setting {
            key: "flagOn",
            default: "false",
            meaning: "a flag",
            set: |c, v| {
                c.flag = parse_bool(v)?;
                Ok(())
            },
            get: |c| c.flag.to_string(),
        },
    ];

    impl Configurable for Demo {
        const NAME: &'static str = "demo";
        fn settings() -> &'static [Setting<Self>] {
            &DEMO
        }
        fn keep_unknown(&mut self, key: &str, _: &str) -> bool {
            self.other.push(key.to_owned());
            false
        }
    }

    #[test]
    fn bad_values_name_the_file_line_and_reason() {
        let mut layered = Layered::<Demo>::default();
        let err = layered
            .apply_text(
                "# c\nflagOn=true\nlistenPort=70000\n",
                Path::new("/etc/x.conf"),
            )
            .unwrap_err();
        assert!(err.starts_with("/etc/x.conf:3: listenPort: "), "{err}");
        assert!(err.contains("70000"), "{err}");
        let err = layered
            .set("flagOn", "yes", Source::CommandLine)
            .unwrap_err();
        assert_eq!(err, "command line: flagOn: \"yes\" is not true or false");
    }

    #[test]
    fn sources_are_kept_and_the_last_setting_wins() {
        let mut layered = Layered::<Demo>::default();
        layered
            .apply_text(
                "listenPort=1\nflgOn=true\nlistenPort=2\n",
                Path::new("a.conf"),
            )
            .unwrap();
        assert_eq!(
            layered.source("listenPort"),
            Source::File {
                path: "a.conf".into(),
                line: 3
            }
        );
        assert_eq!(layered.source("flagOn"), Source::Default);
        assert_eq!(layered.config().other, ["flgOn"]);
        layered.set("listenPort", "3", Source::CommandLine).unwrap();
        assert_eq!(layered.config().port, 3);
        let shown = layered.render();
        assert!(
            shown.contains("listenPort  3      command line\n"),
            "{shown}"
        );
        assert!(shown.contains("flagOn      false  default\n"), "{shown}");
    }

    #[test]
    fn explanations_name_the_sources_of_the_keys_in_an_error() {
        let mut layered = Layered::<Demo>::default();
        layered
            .apply_text("flagOn=true\n", Path::new("a.conf"))
            .unwrap();
        assert_eq!(
            layered.explain("flagOn needs listenPort"),
            "flagOn needs listenPort (listenPort from default; flagOn from a.conf:1)"
        );
        assert_eq!(layered.explain("nothing named"), "nothing named");
        assert!(!mentions("flagOnly", "flagOn"));
    }

    #[test]
    fn a_case_typo_gets_a_suggestion() {
        assert_eq!(
            suggestion::<Demo>("listenport"),
            "; did you mean listenPort?"
        );
        assert_eq!(suggestion::<Demo>("nothing"), "");
    }
}
