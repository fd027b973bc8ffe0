//! A NameServer and a Broker started in this process, on free loopback
//! ports with small store files in a temporary directory: the fastest way
//! to a broker for tests that speak to it request by request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::connection::RemotingClient;
use mq_daemon::broker::{Broker, BrokerConfig, BrokerError};
use mq_daemon::shutdown::{Shutdown, ShutdownTrigger};
use mq_protocol::codes::request as req;
use mq_protocol::frame::SerializeType;

use super::mqd::SMALL_STORE;
use super::ports::free_broker_port;
use super::remoting::{call_ok, connect, request};
use super::tempdir::TempDir;
use super::threads::ServerThreads;

/// The broker name the test brokers run under (the default).
pub const BROKER_NAME: &str = "broker-a";

/// A NameServer and a Broker running in this process on a two-thread
/// executor, with small store files in a temporary directory; stopped cleanly
/// on drop.
pub struct TestBroker {
    pub broker: Arc<Broker>,
    /// The NameServer's address.
    pub namesrv: SocketAddr,
    /// `127.0.0.1:listenPort`.
    pub addr: String,
    /// `127.0.0.1:listenPort-2`.
    pub vip: String,
    pub port: u16,
    trigger: Option<ShutdownTrigger>,
    /// Stopped after the broker, when the fields drop.
    _threads: ServerThreads,
    /// Removed last, after the store is closed.
    _dir: TempDir,
}

impl TestBroker {
    /// A broker with the test defaults.
    pub fn start() -> TestBroker {
        TestBroker::start_with(&[])
    }

    /// A broker with the test defaults plus `extra` broker.conf keys.
    pub fn start_with(extra: &[(&str, &str)]) -> TestBroker {
        let dir = TempDir::new("broker");
        let threads = ServerThreads::start();
        let ex = threads.ex.clone();
        let (shutdown, trigger) = Shutdown::new();
        let namesrv = async_io::block_on(mq_daemon::namesrv::start(
            ex.clone(),
            "127.0.0.1:0".parse().expect("address"),
            shutdown.clone(),
        ))
        .expect("start the NameServer");
        let mut last_error = String::new();
        for attempt in 0..8 {
            let port = free_broker_port();
            let mut config = BrokerConfig::default();
            let root = dir.path().join(format!("store-{attempt}"));
            let mut settings: Vec<(&str, String)> = vec![
                ("namesrvAddr", namesrv.to_string()),
                ("brokerIP1", "127.0.0.1".into()),
                ("listenPort", port.to_string()),
                ("storePathRootDir", root.display().to_string()),
                ("flushIntervalCommitLog", "100".into()),
            ];
            settings.extend(SMALL_STORE.iter().map(|(k, v)| (*k, (*v).to_owned())));
            settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            for (key, value) in &settings {
                config
                    .set(key, value)
                    .unwrap_or_else(|e| panic!("setting {key}={value}: {e}"));
            }
            config.validate().expect("valid broker config");
            match async_io::block_on(Broker::start(ex.clone(), config, shutdown.clone())) {
                Ok(broker) => {
                    // settle's probes are unsigned: with ACL on they are
                    // refused, so wait for the registration (to the open
                    // NameServer) instead.
                    if broker.config().acl_enable {
                        async_io::block_on(super::mqd::wait_registered(&namesrv.to_string()));
                    } else {
                        settle(&format!("127.0.0.1:{port}"));
                    }
                    return TestBroker {
                        broker,
                        namesrv,
                        addr: format!("127.0.0.1:{port}"),
                        vip: format!("127.0.0.1:{}", port - 2),
                        port,
                        trigger: Some(trigger),
                        _threads: threads,
                        _dir: dir,
                    };
                }
                // Someone took the port between the probe and the bind.
                Err(e @ (BrokerError::Bind { .. } | BrokerError::BindVip { .. })) => {
                    last_error = e.to_string()
                }
                Err(e) => panic!("broker did not start: {e}"),
            }
        }
        panic!("no free broker port found: {last_error}");
    }

    /// A new connection to the main port.
    pub async fn client(&self) -> Arc<RemotingClient> {
        connect(&self.addr).await
    }

    /// The store root of the running broker.
    pub fn store_root(&self) -> PathBuf {
        self.broker.config().store.root.clone()
    }
}

/// Waits until the broker's topic table stops changing. It creates system
/// topics in the background just after start, and concurrent topic changes
/// race each other when persisting (`concurrent_topic_changes_all_succeed`);
/// letting that burst pass keeps the other tests about what they test.
fn settle(addr: &str) {
    async_io::block_on(async {
        let client = connect(addr).await;
        let version = || async {
            let r = call_ok(
                &client,
                request(req::GET_ALL_TOPIC_CONFIG, SerializeType::Json, &[]),
            )
            .await;
            mq_protocol::body::TopicConfigSerializeWrapper::decode(&r.body)
                .expect("topic config wrapper")
                .data_version
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = version().await;
        while Instant::now() < deadline {
            async_io::Timer::after(Duration::from_millis(50)).await;
            let now = version().await;
            if now == last {
                return;
            }
            last = now;
        }
    });
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(trigger) = self.trigger.take() {
            let broker = self.broker.clone();
            async_io::block_on(async {
                broker.begin_shutdown().await;
                trigger.trigger_and_wait(Duration::from_secs(5)).await;
                if let Err(e) = broker.finish_shutdown().await {
                    eprintln!("broker shutdown: {e}");
                }
            });
        }
    }
}
