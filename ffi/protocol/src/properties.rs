//! The message properties string: `name \x01 value \x02 name \x01 value`, UTF-8,
//! without a trailing `\x02` (older clients append one; it is ignored when read).

/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Separates one property from the next.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Well-known property names (RocketMQ `MessageConst`).
pub mod keys {
    /// User keys, separated by [`super::KEY_SEPARATOR`]; indexed.
    pub const KEYS: &str = "KEYS";
    /// The message's tag.
    pub const TAGS: &str = "TAGS";
    /// `"false"` when the producer does not wait for the store (flush / replication).
    pub const WAIT: &str = "WAIT";
    /// Delay level (1..=18).
    pub const DELAY: &str = "DELAY";
    /// The client's unique message id; indexed.
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    /// Original topic of a delayed or half message.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// Original queue of a delayed or half message.
    pub const REAL_QID: &str = "REAL_QID";
    /// The topic a message sent back for a retry came from.
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// The message id of the message a retry copies.
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    /// The producer group of a transactional (half) message.
    pub const PGROUP: &str = "PGROUP";
    /// `"true"` on a transactional message.
    pub const TRAN_MSG: &str = "TRAN_MSG";
}

/// Separates the words of the KEYS property.
pub const KEY_SEPARATOR: char = ' ';

/// Iterates over the `(name, value)` pairs of a properties string, skipping empty
/// segments and segments without a separator, as RocketMQ's parser does.
pub fn iter(properties: &str) -> impl Iterator<Item = (&str, &str)> {
    properties
        .split(PROPERTY_SEPARATOR)
        .filter_map(|pair| pair.split_once(NAME_VALUE_SEPARATOR))
        .filter(|(name, _)| !name.is_empty())
}

/// The value of property `name`, if present.
pub fn get<'a>(properties: &'a str, name: &str) -> Option<&'a str> {
    iter(properties).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Encodes `(name, value)` pairs as a properties string.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push(PROPERTY_SEPARATOR);
        }
        out.push_str(name);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(value);
    }
    out
}

/// Java's `String.hashCode`: `h = 31 * h + c` over UTF-16 code units, wrapping.
/// The ConsumeQueue's tag code and the IndexFile's key hash are built on it.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The ConsumeQueue tag code of a tag: its Java hash, 0 for no tag.
pub fn tag_hash(tag: Option<&str>) -> i64 {
    tag.map_or(0, |t| i64::from(java_string_hash(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_ignores_odd_segments() {
        let s = "KEYS\u{1}a b\u{2}\u{2}junk\u{2}TAGS\u{1}TagA\u{2}";
        let pairs: Vec<_> = iter(s).collect();
        assert_eq!(pairs, vec![("KEYS", "a b"), ("TAGS", "TagA")]);
        assert_eq!(get(s, "TAGS"), Some("TagA"));
        assert_eq!(get(s, "DELAY"), None);
    }

    #[test]
    fn encode_has_no_trailing_separator() {
        assert_eq!(encode([("A", "1"), ("B", "2")]), "A\u{1}1\u{2}B\u{1}2");
        assert_eq!(encode([]), "");
    }

    #[test]
    fn java_hash_matches_java() {
        // Values printed by java.lang.String#hashCode on Java 17.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("TopicTest#KEY0"), -1_656_969_517);
        // A character outside the BMP counts as two UTF-16 units.
        assert_eq!(java_string_hash("\u{1F600}"), 1_772_899);
    }
}
