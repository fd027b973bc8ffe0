//! Every NameServer key mq reads, from `mqd namesrv -c namesrv.conf` and
//! `--key value`: RocketMQ's names where RocketMQ has the setting, `(mq)` in
//! the meaning where it does not. The README's table is checked against it.

use std::net::SocketAddr;

use super::config::NamesrvConfig;
use crate::settings::{
    parse, parse_bool, parse_connection_limit, parse_millis, parse_port_or_off, Configurable,
    Setting,
};

/// RocketMQ NameServer keys that mean nothing to mq, accepted without a
/// warning: it keeps no files and has no Netty to tune.
const IGNORED: &[&str] = &[
    "rocketmqHome",
    "kvConfigPath",
    "configStorePath",
    "productEnvName",
    "clusterTest",
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
];

/// The NameServer's keys.
static NAMESRV_SETTINGS: [Setting<NamesrvConfig>; 8] = [
    Setting {
        key: "listenIP",
        default: "127.0.0.1",
        meaning: "(mq) The address to listen on (RocketMQ listens on every interface; `0.0.0.0` does that).",
        set: |c, v| {
            c.listen = SocketAddr::new(parse(v)?, c.listen.port());
            Ok(())
        },
        get: |c| c.listen.ip().to_string(),
    },
    Setting {
        key: "listenPort",
        default: "9876",
        meaning: "The port to listen on.",
        set: |c, v| {
            c.listen.set_port(parse(v)?);
            Ok(())
        },
        get: |c| c.listen.port().to_string(),
    },
    Setting {
        key: "metricsPort",
        default: "(none: off)",
        meaning: "(mq) Port of the Prometheus endpoint, on the NameServer's listen address; 0 for none.",
        set: |c, v| {
            c.metrics_port = parse_port_or_off(v)?;
            Ok(())
        },
        get: |c| c.metrics_port.map(|p| p.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "serverMaxConnections",
        default: "(share of `RLIMIT_NOFILE`)",
        meaning: "(mq) Connections held at once; one more is closed as soon as it is accepted.",
        set: |c, v| {
            c.max_connections = Some(parse_connection_limit(v)?);
            Ok(())
        },
        get: |c| c.max_connections.map(|n| n.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "orderMessageEnable",
        default: "false",
        meaning: "Put `orderTopicConf` (the ORDER_TOPIC_CONFIG KV namespace) in routes.",
        set: |c, v| {
            c.order_message_enable = parse_bool(v)?;
            Ok(())
        },
        get: |c| c.order_message_enable.to_string(),
    },
    Setting {
        key: "brokerChannelExpiredTime",
        default: "120000",
        meaning: "(mq; fixed in RocketMQ) ms of silence after which a broker is dropped.",
        set: |c, v| {
            c.broker_expiry = positive(parse_millis(v)?)?;
            Ok(())
        },
        get: |c| c.broker_expiry.as_millis().to_string(),
    },
    Setting {
        key: "scanNotActiveBrokerInterval",
        default: "10000",
        meaning: "(mq; fixed in RocketMQ) ms between scans for silent brokers.",
        set: |c, v| {
            c.scan_interval = positive(parse_millis(v)?)?;
            Ok(())
        },
        get: |c| c.scan_interval.as_millis().to_string(),
    },
    Setting {
        key: "plainAclFile",
        default: "(none: open)",
        meaning: "(mq) Accounts file, in `plain_acl.yml`'s format, guarding the write codes (registrations, KV config, topic deletion); re-read when it changes. `--acl-file` sets it.",
        set: |c, v| {
            let v = v.trim();
            c.acl_file = (!v.is_empty()).then(|| std::path::PathBuf::from(v));
            Ok(())
        },
        get: |c| c.acl_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
    },
];

fn positive(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        Err("must be more than 0".into())
    } else {
        Ok(d)
    }
}

impl Configurable for NamesrvConfig {
    const NAME: &'static str = "NameServer";

    fn settings() -> &'static [Setting<Self>] {
        &NAMESRV_SETTINGS
    }

    fn keep_unknown(&mut self, key: &str, _value: &str) -> bool {
        IGNORED.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_defaults_and_the_readme() {
        crate::settings::check_table::<NamesrvConfig>();
    }
}
