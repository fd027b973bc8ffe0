//! Messages as users see them: [`Message`] to send, [`MessageExt`] received,
//! and the client's unique message id (UNIQ_KEY) as RocketMQ's clients make it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;

use mq_protocol::message::{decode_records, offset_msg_id, sys_flag};
use mq_protocol::properties::{self, keys};

use super::error::{ClientError, Result};

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// User flag.
    pub flag: i32,
    /// Properties: TAGS, KEYS, DELAY, user properties.
    pub properties: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Message {
    /// A message for `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            ..Default::default()
        }
    }

    /// Sets the tag.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(keys::TAGS.into(), tags.into());
        self
    }

    /// Sets the keys (indexed by the broker; space separated on the wire).
    pub fn with_keys<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, keys_: I) -> Self {
        let joined: Vec<String> = keys_.into_iter().map(|k| k.as_ref().to_owned()).collect();
        self.properties.insert(keys::KEYS.into(), joined.join(" "));
        self
    }

    /// Delays delivery by RocketMQ delay level `level` (1..=18).
    pub fn with_delay_level(mut self, level: i32) -> Self {
        self.properties
            .insert(keys::DELAY.into(), level.to_string());
        self
    }

    /// Adds a user property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// The tag, if set.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(keys::TAGS).map(String::as_str)
    }

    /// The properties string as sent.
    pub fn properties_string(&self) -> String {
        properties::encode(
            self.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// The id users see: UNIQ_KEY, or the offset id when there is none.
    pub msg_id: String,
    /// The broker's offset message id.
    pub offset_msg_id: String,
    /// Topic.
    pub topic: String,
    /// Broker that stored it.
    pub broker_name: String,
    /// Queue.
    pub queue_id: i32,
    /// Offset in the queue.
    pub queue_offset: i64,
    /// Offset in the broker's CommitLog.
    pub commit_log_offset: i64,
    /// User flag.
    pub flag: i32,
    /// System flag.
    pub sys_flag: i32,
    /// When the producer made it (ms).
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// When the broker stored it (ms).
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Times consumed before.
    pub reconsume_times: i32,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Body (decompressed).
    pub body: Vec<u8>,
}

impl MessageExt {
    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(keys::TAGS).map(String::as_str)
    }

    /// The keys, if any.
    pub fn keys(&self) -> Vec<&str> {
        self.properties
            .get(keys::KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// Compresses a body with zlib, as the Java producer does above 4 KiB (level 5).
pub fn compress(body: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(body, 5)
}

/// Decompresses a zlib body, refusing to grow past `limit` bytes (a hostile body
/// must not exhaust memory).
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    use miniz_oxide::inflate::{decompress_to_vec_zlib_with_limit, TINFLStatus};
    decompress_to_vec_zlib_with_limit(body, limit).map_err(|e| match e.status {
        TINFLStatus::HasMoreOutput => {
            ClientError::decode("compressed body", format!("inflates past {limit} bytes"))
        }
        status => ClientError::decode("compressed body", format!("not a zlib stream ({status:?})")),
    })
}

/// Largest decompressed body accepted (RocketMQ's maxMessageSize is 4 MiB; leave room).
const MAX_INFLATED: usize = 64 * 1024 * 1024;

/// Decodes a PULL/QUERY body into messages, decompressing compressed bodies.
pub fn decode_messages(body: &[u8], broker_name: &str) -> Result<Vec<MessageExt>> {
    let records = decode_records(body, false).map_err(|e| ClientError::decode("messages", e))?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let props: BTreeMap<String, String> = properties::iter(r.properties)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let body = if r.sys_flag & sys_flag::COMPRESSED != 0 {
            // A body that cannot be inflated (LZ4 or ZSTD from a 5.x producer, or
            // damage) is handed over as stored, its COMPRESSED flag still set,
            // rather than failing the whole pull and stalling the queue on it.
            decompress(r.body, MAX_INFLATED).unwrap_or_else(|e| {
                log::warn!(
                    "message at {} of {}: {e}; delivering its body as stored",
                    r.physical_offset,
                    r.topic
                );
                r.body.to_vec()
            })
        } else {
            r.body.to_vec()
        };
        let offset_id = offset_msg_id(&r.store_host, r.physical_offset);
        out.push(MessageExt {
            msg_id: props
                .get(keys::UNIQ_KEY)
                .cloned()
                .unwrap_or_else(|| offset_id.clone()),
            offset_msg_id: offset_id,
            topic: r.topic.to_owned(),
            broker_name: broker_name.to_owned(),
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            commit_log_offset: r.physical_offset,
            flag: r.flag,
            sys_flag: r.sys_flag,
            born_timestamp: r.born_timestamp,
            born_host: r.born_host,
            store_timestamp: r.store_timestamp,
            store_host: r.store_host,
            reconsume_times: r.reconsume_times,
            properties: props,
            body,
        });
    }
    Ok(out)
}

/// Makes client unique ids as RocketMQ's MessageClientIDSetter lays them out:
/// IP (4), pid (2), a per-process random number where Java has its class
/// loader's hash (4), ms since the start of the month (4), counter (2); 32 hex
/// characters.
pub fn unique_id(client_ip: &str) -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let ip: [u8; 4] = client_ip
            .parse::<std::net::Ipv4Addr>()
            .map_or([127, 0, 0, 1], |ip| ip.octets());
        let pid = (std::process::id() & 0xFFFF) as u16;
        let random = std::collections::hash_map::RandomState::new();
        let salt = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = random.build_hasher();
            h.write_u32(std::process::id());
            h.finish() as u32
        };
        let mut s = String::with_capacity(20);
        for b in ip
            .iter()
            .chain(&pid.to_be_bytes())
            .chain(&salt.to_be_bytes())
        {
            s.push_str(&format!("{b:02X}"));
        }
        s
    });
    let now = mq_protocol::time::now_ms().unsigned_abs();
    // Milliseconds since the start of the (30-day-ish) month; Java uses the
    // calendar month, which only matters for decoding the time back.
    let since_month = (now % (31 * 24 * 3600 * 1000)) as u32;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{since_month:08X}{counter:04X}")
}

#[cfg(test)]
impl MessageExt {
    /// A message of topic `T` at `offset` of queue 0 of broker `b`, with a
    /// 10-byte body, as the consumers' tests need one.
    pub(crate) fn for_test(offset: i64) -> Self {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("an address");
        MessageExt {
            msg_id: format!("m{offset}"),
            offset_msg_id: String::new(),
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 0,
            queue_offset: offset,
            commit_log_offset: 0,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: addr,
            store_timestamp: 0,
            store_host: addr,
            reconsume_times: 0,
            properties: BTreeMap::new(),
            body: vec![0; 10],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips_and_is_bounded() {
        let body = vec![b'a'; 100_000];
        let packed = compress(&body);
        assert!(packed.len() < 1000);
        assert_eq!(decompress(&packed, 200_000).unwrap(), body);
        assert!(decompress(&packed, 50_000).is_err());
        assert!(decompress(b"not zlib", 1000).is_err());
    }

    #[test]
    fn a_body_that_does_not_inflate_is_delivered_as_stored() {
        use mq_protocol::message::StoredMessage;
        let record = StoredMessage {
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: sys_flag::COMPRESSED | 0x100,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 0,
            store_host: "127.0.0.1:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"lz4 bytes, not zlib",
            topic: "T",
            properties: "",
        }
        .encode()
        .unwrap();
        let msgs = decode_messages(&record, "b").unwrap();
        assert_eq!(msgs[0].body, b"lz4 bytes, not zlib");
        assert!(msgs[0].sys_flag & sys_flag::COMPRESSED != 0);
    }

    #[test]
    fn unique_ids_are_32_hex_and_distinct() {
        let a = unique_id("10.0.0.5");
        let b = unique_id("10.0.0.5");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn builder_sets_properties() {
        let m = Message::new("T", "x")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_delay_level(3);
        assert_eq!(m.tags(), Some("TagA"));
        assert!(m.properties_string().contains("KEYS\u{1}k1 k2"));
    }
}
