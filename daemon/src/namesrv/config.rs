//! The NameServer's settings, and their text form for GET_NAMESRV_CONFIG and
//! UPDATE_NAMESRV_CONFIG (Java properties, `key=value` lines, as `mqadmin
//! getNamesrvConfig` / `updateNamesrvConfig` read and write them).
//!
//! | Key | Meaning | Default |
//! |---|---|---|
//! | `orderMessageEnable` | put `orderTopicConf` in routes (RocketMQ's `NamesrvConfig` key) | `false` |
//! | `brokerChannelExpiredTime` | ms of silence after which a broker is dropped (RocketMQ's fixed `BROKER_CHANNEL_EXPIRED_TIME`) | `120000` |
//! | `scanNotActiveBrokerInterval` | ms between liveness scans (fixed at 10 s in RocketMQ) | `10000` |
//!
//! `serverMaxConnections` (mq's; RocketMQ has no connection limit) is the most
//! connections the NameServer's listener holds at once, by default its share of
//! the descriptor limit ([`crate::descriptors`]). It is read at start (`mqd
//! namesrv --max-connections`, `mqd standalone --namesrv-max-connections`), so
//! UPDATE_NAMESRV_CONFIG refuses it and GET_NAMESRV_CONFIG does not list it.
//!
//! `metricsPort` (mq's) is the port of the NameServer's Prometheus endpoint
//! (`GET /metrics`, see [`crate::metrics`]); absent or 0, there is none. Like
//! `serverMaxConnections` it is read at start (`mqd namesrv --metrics-port`,
//! `mqd standalone --namesrv-metrics-port`).
//!
//! RocketMQ's other NameServer keys (`rocketmqHome`, `productEnvName`,
//! `clusterTest`, the Netty settings) mean nothing to mq and are refused by
//! name rather than silently ignored.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

/// The NameServer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// A broker not heard from (REGISTER_BROKER, or QUERY_DATA_VERSION with an
    /// unchanged version) for this long is dropped. RocketMQ: 120 s.
    pub broker_expiry: Duration,
    /// How often silent brokers are looked for. RocketMQ: 10 s.
    pub scan_interval: Duration,
    /// Whether routes carry `orderTopicConf` from the `ORDER_TOPIC_CONFIG` KV
    /// namespace. RocketMQ: false.
    pub order_message_enable: bool,
    /// `serverMaxConnections`: connections held at once, a connection beyond
    /// it being closed as soon as it is accepted; `None` for the listener's
    /// share of the descriptor limit. Read at start only.
    pub max_connections: Option<usize>,
    /// `listenIP` and `listenPort`: where `mqd namesrv` listens. Read at start
    /// only.
    pub listen: SocketAddr,
    /// `metricsPort`: the Prometheus endpoint's port on the NameServer's
    /// address; `None` (or 0 given) for no endpoint. Read at start only.
    pub metrics_port: Option<u16>,
    /// mq's NameServer access control (RocketMQ 4.9.7 has none): an accounts
    /// file in `plain_acl.yml`'s format. When set, the write codes
    /// ([`crate::namesrv::WRITE_CODES`]) need a whitelisted address or an
    /// admin account's signature; reads stay open. Read at start only
    /// (`mqd namesrv --acl-file`), reloaded when the file changes.
    pub acl_file: Option<std::path::PathBuf>,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            broker_expiry: Duration::from_secs(120),
            scan_interval: Duration::from_secs(10),
            order_message_enable: false,
            max_connections: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9876)),
            metrics_port: None,
            acl_file: None,
        }
    }
}

const ORDER_MESSAGE_ENABLE: &str = "orderMessageEnable";
const BROKER_EXPIRY: &str = "brokerChannelExpiredTime";
const SCAN_INTERVAL: &str = "scanNotActiveBrokerInterval";
/// The key of [`NamesrvConfig::max_connections`], as the broker spells its own.
const MAX_CONNECTIONS: &str = "serverMaxConnections";
/// The key of [`NamesrvConfig::metrics_port`], as the broker spells its own.
const METRICS_PORT: &str = "metricsPort";

/// Why an UPDATE_NAMESRV_CONFIG body was refused. Nothing is applied then.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The body is not a properties text.
    #[error("cannot read the config body as properties: {0}")]
    Syntax(String),
    /// A key naming a file: RocketMQ refuses these with NO_PERMISSION.
    #[error("Can not update config path")]
    Path(String),
    /// A key mq does not have.
    #[error("unsupported NameServer config key {0:?} (supported: orderMessageEnable, brokerChannelExpiredTime, scanNotActiveBrokerInterval)")]
    UnknownKey(String),
    /// A key that only takes effect when the NameServer starts.
    #[error("{0} is read only when the NameServer starts (mqd namesrv --max-connections, --metrics-port)")]
    StartOnly(String),
    /// A supported key with a value of the wrong kind.
    #[error("invalid value {value:?} for NameServer config key {key}: expected {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// What it was given.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
}

impl NamesrvConfig {
    /// The settings as properties text, keys sorted.
    pub(crate) fn to_properties(&self) -> String {
        format!(
            "{BROKER_EXPIRY}={}\n{ORDER_MESSAGE_ENABLE}={}\n{SCAN_INTERVAL}={}\n",
            self.broker_expiry.as_millis(),
            self.order_message_enable,
            self.scan_interval.as_millis()
        )
    }

    /// These settings with the properties in `text` applied; all or nothing.
    pub(crate) fn updated(&self, text: &str) -> Result<NamesrvConfig, ConfigError> {
        let properties =
            crate::properties_file::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        // The last of a repeated key wins, as in `Properties`; sorted, so that
        // of several bad keys the same one is always reported.
        let properties: std::collections::BTreeMap<String, String> =
            properties.into_iter().map(|p| (p.key, p.value)).collect();
        let mut next = self.clone();
        for (key, value) in properties {
            let value = value.trim();
            match key.as_str() {
                ORDER_MESSAGE_ENABLE => next.order_message_enable = parse_bool(&key, value)?,
                BROKER_EXPIRY => next.broker_expiry = parse_millis(&key, value)?,
                SCAN_INTERVAL => next.scan_interval = parse_millis(&key, value)?,
                "kvConfigPath" | "configStorePath" => return Err(ConfigError::Path(key)),
                MAX_CONNECTIONS | METRICS_PORT => return Err(ConfigError::StartOnly(key)),
                _ => return Err(ConfigError::UnknownKey(key)),
            }
        }
        Ok(next)
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ConfigError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: "true or false",
        })
    }
}

fn parse_millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: "a positive number of milliseconds",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let config = NamesrvConfig::default();
        let text = config.to_properties();
        assert_eq!(
            text,
            "brokerChannelExpiredTime=120000\norderMessageEnable=false\nscanNotActiveBrokerInterval=10000\n"
        );
        assert_eq!(config.updated(&text), Ok(config.clone()));
        assert_eq!(config.updated(""), Ok(config));
    }

    #[test]
    fn applies_supported_keys() {
        let config = NamesrvConfig::default()
            .updated("orderMessageEnable = TRUE\nscanNotActiveBrokerInterval=500\n# comment\nbrokerChannelExpiredTime=3000")
            .expect("valid update");
        assert!(config.order_message_enable);
        assert_eq!(config.scan_interval, Duration::from_millis(500));
        assert_eq!(config.broker_expiry, Duration::from_secs(3));
    }

    #[test]
    fn refuses_unknown_keys_paths_and_bad_values_whole() {
        let config = NamesrvConfig::default();
        let err = config
            .updated("orderMessageEnable=true\nlistenPort=9877")
            .expect_err("unknown key");
        assert_eq!(err, ConfigError::UnknownKey("listenPort".into()));
        assert!(err.to_string().contains("listenPort"));
        assert_eq!(
            config.updated("kvConfigPath=/tmp/x"),
            Err(ConfigError::Path("kvConfigPath".into()))
        );
        let err = config
            .updated("scanNotActiveBrokerInterval=0")
            .expect_err("zero");
        assert!(err.to_string().contains("scanNotActiveBrokerInterval"));
        assert!(config.updated("orderMessageEnable=yes").is_err());
        assert_eq!(
            config.updated("serverMaxConnections=10"),
            Err(ConfigError::StartOnly("serverMaxConnections".into()))
        );
        assert_eq!(
            config.updated("metricsPort=5558"),
            Err(ConfigError::StartOnly("metricsPort".into()))
        );
    }
}
