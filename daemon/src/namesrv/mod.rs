//! The NameServer: where brokers register and clients look up routes
//! (protocol reference §3.2, §4.12, §9.8). It behaves as Apache RocketMQ 4.9's
//! NameServer: brokers register every 30 s over a connection they keep open;
//! a broker is dropped as soon as that connection closes, or when it has not
//! been heard from for [`NamesrvConfig::broker_expiry`] (a scan runs every
//! [`NamesrvConfig::scan_interval`]). NameServers never talk to each other
//! and keep nothing on disk: a restarted one is complete again after one
//! registration round.
//!
//! - `route`: the route table (topics, brokers, clusters, liveness).
//! - `kv`: the in-memory KV configuration (`ORDER_TOPIC_CONFIG`).
//! - `config`: [`NamesrvConfig`] and its properties form.
//! - `handler`: one function per request code.
//! - `settings`: the table of its keys (`mqd namesrv -c namesrv.conf`).
//! - `metrics`: what its Prometheus endpoint (`metricsPort`) shows.

mod config;
mod handler;
mod kv;
mod metrics;
mod route;
mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_net::TcpListener;

pub use config::NamesrvConfig;

use crate::acl::Acl;
use crate::server::{serve, ServerLimits};
use crate::shutdown::Shutdown;
use handler::NamesrvHandler;
use mq_protocol::codes::request as req;

/// The codes that change the NameServer's tables: with an ACL file
/// ([`NamesrvConfig::acl_file`]) only whitelisted addresses and admin
/// accounts may send them. QUERY_DATA_VERSION is among them because it
/// keeps a registration alive.
pub const WRITE_CODES: [i32; 9] = [
    req::PUT_KV_CONFIG,
    req::DELETE_KV_CONFIG,
    req::REGISTER_BROKER,
    req::UNREGISTER_BROKER,
    req::QUERY_DATA_VERSION,
    req::WIPE_WRITE_PERM_OF_BROKER,
    req::ADD_WRITE_PERM_OF_BROKER,
    req::DELETE_TOPIC_IN_NAMESRV,
    req::UPDATE_NAMESRV_CONFIG,
];

/// The shortest scan interval honoured, so a zero in a test configuration
/// cannot turn the scan into a busy loop.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(1);

/// Starts a NameServer with the default settings on `addr` (port 0 picks a free
/// port). See [`start_with`].
pub async fn start(
    ex: Arc<Executor<'static>>,
    addr: SocketAddr,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    start_with(ex, addr, shutdown, NamesrvConfig::default()).await
}

/// Binds `addr`, spawns the server and the liveness scan on `ex`, and returns
/// the bound address. Both tasks stop when `shutdown` fires; the executor must
/// be running for them to make progress.
pub async fn start_with(
    ex: Arc<Executor<'static>>,
    addr: SocketAddr,
    shutdown: Shutdown,
    config: NamesrvConfig,
) -> std::io::Result<SocketAddr> {
    let acl = match &config.acl_file {
        None => None,
        Some(path) => Some(Arc::new(
            Acl::open(path.clone(), None).map_err(|e| std::io::Error::other(e.to_string()))?,
        )),
    };
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let limits = ServerLimits {
        max_connections: config
            .max_connections
            .unwrap_or_else(|| crate::descriptors::connections_per_listener(1)),
        ..ServerLimits::default()
    };
    let metrics_listener = match config.metrics_port.filter(|p| *p != 0) {
        Some(port) => Some(TcpListener::bind(SocketAddr::new(local.ip(), port)).await?),
        None => None,
    };
    if let Some(acl) = &acl {
        // Runs until shutdown; detached like the scan loop.
        ex.spawn(acl.clone().watch(shutdown.clone())).detach();
    }
    let handler = Arc::new(NamesrvHandler::new(config).with_acl(acl));
    if let Some(listener) = metrics_listener {
        let source = Arc::new(metrics::NamesrvMetrics {
            handler: handler.clone(),
            connections: limits.open_connections.clone(),
        });
        crate::metrics::http::start(&ex, "NameServer", listener, source, &shutdown);
    }
    // Both tasks end on shutdown; nothing needs their results, so detached.
    ex.spawn(serve(
        ex.clone(),
        listener,
        handler.clone(),
        limits,
        shutdown.clone(),
    ))
    .detach();
    ex.spawn(scan_loop(handler, shutdown)).detach();
    log::info!("NameServer listening on {local}");
    Ok(local)
}

/// Drops silent brokers every scan interval until shutdown. The interval is
/// re-read each round, so UPDATE_NAMESRV_CONFIG takes effect without a restart.
async fn scan_loop(handler: Arc<NamesrvHandler>, shutdown: Shutdown) {
    loop {
        let interval = handler.scan_interval().max(MIN_SCAN_INTERVAL);
        let stopped = futures_lite::future::or(
            async {
                async_io::Timer::after(interval).await;
                false
            },
            async {
                shutdown.wait().await;
                true
            },
        )
        .await;
        if stopped {
            return;
        }
        let removed = handler.scan(Instant::now());
        if removed > 0 {
            log::info!("liveness scan removed {removed} silent broker address(es)");
        }
    }
}
