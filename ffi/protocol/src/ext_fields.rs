//! [`ExtFields`]: a command's custom header (Java's `extFields`, a map of
//! strings), stored as one string of keys and values back to back plus a
//! list of where each field lies. Decoding a header then costs two
//! allocations whatever the number of fields, instead of two per field and a
//! tree; a header holds a dozen or two short fields, so a lookup is a short
//! linear scan.
//!
//! Fields keep the order they were added in (Java's `HashMap` gives no order
//! either). A key added twice keeps its last value, as a map would: each key
//! is there at most once.

use std::fmt;

/// Where one field's key and value lie in the text.
#[derive(Debug, Clone, Copy)]
struct Field {
    key_start: usize,
    /// Also where the value starts.
    key_end: usize,
    value_end: usize,
}

/// The custom header of a command: string keys to string values.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    fields: Vec<Field>,
}

impl ExtFields {
    /// No fields.
    pub fn new() -> Self {
        ExtFields::default()
    }

    /// No fields, with room for `fields` fields of `text` bytes in all.
    pub fn with_capacity(fields: usize, text: usize) -> Self {
        ExtFields {
            text: String::with_capacity(text),
            fields: Vec::with_capacity(fields),
        }
    }

    fn key(&self, f: &Field) -> &str {
        &self.text[f.key_start..f.key_end]
    }

    fn value(&self, f: &Field) -> &str {
        &self.text[f.key_end..f.value_end]
    }

    fn position(&self, key: &str) -> Option<usize> {
        // On bytes: slicing the text as a `str` would check char boundaries
        // for every field passed over, and most differ in length anyway.
        let (text, key) = (self.text.as_bytes(), key.as_bytes());
        self.fields.iter().position(|f| {
            f.key_end - f.key_start == key.len() && &text[f.key_start..f.key_end] == key
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.value(&self.fields[i]))
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.forget(key);
        let key_start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.fields.push(Field {
            key_start,
            key_end,
            value_end: self.text.len(),
        });
    }

    /// Sets `key` to `value` as `Display` writes it, straight into the
    /// fields' text (no string of its own: numbers on a hot path).
    pub fn insert_display(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(self.begin_value(key), "{value}");
        self.end_value();
    }

    /// Makes room for `fields` more fields of `text` more bytes in all.
    pub fn reserve(&mut self, fields: usize, text: usize) {
        self.fields.reserve(fields);
        self.text.reserve(text);
    }

    /// Drops the field of `key`, if any. Its bytes stay in the text, unused:
    /// replacing a field is rare.
    fn forget(&mut self, key: &str) -> Option<Field> {
        let i = self.position(key)?;
        Some(self.fields.remove(i))
    }

    /// Sets `key` to a value the caller appends to the returned string (a
    /// decoder unescaping straight into place); [`end_value`](Self::end_value)
    /// closes it.
    pub(crate) fn begin_value(&mut self, key: &str) -> &mut String {
        self.forget(key);
        let key_start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        self.fields.push(Field {
            key_start,
            key_end,
            value_end: key_end,
        });
        &mut self.text
    }

    /// Closes the field [`begin_value`](Self::begin_value) opened.
    pub(crate) fn end_value(&mut self) {
        let end = self.text.len();
        if let Some(last) = self.fields.last_mut() {
            last.value_end = end;
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let field = self.forget(key)?;
        Some(self.value(&field).to_owned())
    }

    /// The fields, as `(key, value)`, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|f| (self.key(f), self.value(f)))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Equal when they hold the same keys with the same values, in any order.
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ext = ExtFields::new();
        for (k, v) in iter {
            ext.insert(k.as_ref(), v.as_ref());
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut ext = ExtFields::new();
        assert!(ext.is_empty());
        ext.insert("topic", "A");
        ext.insert("queueId", "3");
        ext.insert("topic", "B");
        assert_eq!(ext.get("topic"), Some("B"));
        assert_eq!(ext.get("queueId"), Some("3"));
        assert_eq!(ext.get("nope"), None);
        assert_eq!(ext.len(), 2);
        assert_eq!(
            ext.iter().collect::<Vec<_>>(),
            [("queueId", "3"), ("topic", "B")]
        );
        assert_eq!(ext.remove("topic").as_deref(), Some("B"));
        assert_eq!(ext.get("topic"), None);
        assert!(!ext.contains_key("topic"));
        let other: ExtFields = [("queueId", "3")].into_iter().collect();
        assert_eq!(ext, other);
        assert_eq!(format!("{ext:?}"), r#"{"queueId": "3"}"#);
    }

    #[test]
    fn decoders_fill_values_in_place() {
        let mut ext = ExtFields::new();
        ext.insert("a", "1");
        ext.begin_value("b").push_str("two");
        ext.end_value();
        ext.begin_value("a").push_str("33");
        ext.end_value();
        assert_eq!(ext.get("a"), Some("33"), "the last duplicate counts");
        assert_eq!(ext.get("b"), Some("two"));
        assert_eq!(ext.iter().collect::<Vec<_>>(), [("b", "two"), ("a", "33")]);
        assert_eq!(ext.remove("a").as_deref(), Some("33"));
        assert_eq!(ext.get("a"), None);
    }
}
