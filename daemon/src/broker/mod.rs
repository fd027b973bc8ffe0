//! The Broker: serves producers, consumers and admin tools over RocketMQ's
//! remoting protocol, on top of the message store.
//!
//! - [`config`]: `broker.conf` keys.
//! - [`send`]: SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE.
//! - [`pull`]: PULL_MESSAGE, with long polling ([`hold`]).
//! - [`consumer`]: offsets, heartbeats, client registry, queue locks.
//! - [`admin`]: topics, groups, stats, queries — what mqadmin calls.
//! - [`register`]: registration with every NameServer.
//! - [`schedule`]: delayed messages and consumer retries (send-back, DLQ).
//! - [`transaction`]: half messages, END_TRANSACTION and check-backs.
//! - [`topics`], [`offsets`], [`groups`], [`clients`]: the broker's tables,
//!   persisted under `<store root>/config/` ([`persist`]).

pub mod config;
pub mod error;
pub mod handle;
pub mod persist;
pub mod state;
pub mod task;
pub mod transaction;

use handle::{admin, clients as consumer, pull, send};
use state::{clients, groups, hold, offsets, topics};
use task::{register, schedule};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::Executor;

use mq::protocol::codes::{request, response};
use mq::protocol::remoting::RemotingCommand;

pub use config::BrokerConfig;
pub use error::BrokerError;

use crate::remoting::{
    error_response, serve, BoxFuture, Connection, RequestHandler, ServerLimits, Shutdown,
};
use crate::store::MessageStore;

/// A running broker.
pub struct Broker {
    config: BrokerConfig,
    /// The message store.
    pub store: Arc<MessageStore>,
    /// Topic configurations.
    pub topics: topics::TopicManager,
    /// Committed consumer offsets.
    pub offsets: offsets::OffsetManager,
    /// Subscription group configurations.
    pub groups: groups::GroupManager,
    /// Producers and consumers.
    pub clients: clients::ClientManager,
    /// Parked pulls.
    pub holds: hold::PullHolds,
    /// Queue locks of orderly consumers.
    pub locks: consumer::LockManager,
    /// Delivery progress of each delay level.
    pub schedule: schedule::ScheduleOffsets,
    /// Which half messages have been decided.
    pub transactions: transaction::TransactionState,
    /// Timings of the transaction check.
    transaction_config: transaction::TransactionConfig,
    /// Connections to the NameServers.
    registrar: register::Registrar,
    ex: Arc<Executor<'static>>,
    shutdown: Shutdown,
    /// Set once shutdown begins: sends are refused, pulls not parked.
    stopping: AtomicBool,
    /// When the broker started, for runtime info.
    started: Instant,
    /// Start time in ms since the epoch.
    boot_timestamp: i64,
    /// Messages stored since start.
    put_count: AtomicI64,
    /// Messages sent to consumers since start.
    get_count: AtomicI64,
}

impl Broker {
    /// Opens the store and the broker's tables, binds the main and VIP ports,
    /// and starts serving, registering and housekeeping on `ex`.
    pub async fn start(
        ex: Arc<Executor<'static>>,
        config: BrokerConfig,
        shutdown: Shutdown,
    ) -> Result<Arc<Self>, BrokerError> {
        let root = config.store.root.clone();
        let store_config = config.store.clone();
        // Opening runs recovery, which reads files: keep it off the executor.
        let store = smol::unblock(move || MessageStore::open(store_config))
            .await
            .map_err(|source| BrokerError::OpenStore {
                path: root.clone(),
                source,
            })?;
        let topics = topics::TopicManager::load(
            &root,
            &config.cluster_name,
            &config.broker_name,
            config.auto_create_topic_enable,
            config.default_topic_queue_nums,
        )?;
        let offsets = offsets::OffsetManager::load(&root)?;
        let groups = groups::GroupManager::load(&root, config.auto_create_subscription_group)?;
        let schedule = schedule::ScheduleOffsets::load(&root)?;
        let main = async_net::TcpListener::bind(config.bind_addr())
            .await
            .map_err(|source| BrokerError::Bind {
                addr: config.bind_addr(),
                source,
            })?;
        let vip = async_net::TcpListener::bind(config.vip_bind_addr())
            .await
            .map_err(|source| BrokerError::BindVip {
                addr: config.vip_bind_addr(),
                source,
            })?;
        let transaction_config = config.transaction.clone();
        let broker = Arc::new(Broker {
            registrar: register::Registrar::new(config.namesrv_addrs.clone()),
            config,
            store,
            topics,
            offsets,
            groups,
            clients: clients::ClientManager::default(),
            holds: hold::PullHolds::new(),
            locks: consumer::LockManager::default(),
            schedule,
            transactions: transaction::TransactionState::default(),
            transaction_config,
            ex: ex.clone(),
            shutdown: shutdown.clone(),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
            boot_timestamp: crate::store::commit_log::now_ms(),
            put_count: AtomicI64::new(0),
            get_count: AtomicI64::new(0),
        });
        let weak = Arc::downgrade(&broker);
        broker
            .store
            .set_arrival_listener(Some(Arc::new(move |arrival| {
                if let Some(b) = weak.upgrade() {
                    b.holds
                        .notify_arrival(arrival.topic, arrival.queue_id, arrival.max_offset);
                }
            })));
        let limits = ServerLimits {
            max_frame: broker.config.max_frame,
            // Two listeners: the main port and the VIP port.
            max_connections: broker
                .config
                .max_connections
                .unwrap_or_else(|| crate::descriptors::connections_per_listener(2)),
            ..ServerLimits::default()
        };
        // Server and housekeeping tasks run until shutdown; detached on purpose.
        ex.spawn(serve(
            ex.clone(),
            main,
            broker.clone(),
            limits.clone(),
            shutdown.clone(),
        ))
        .detach();
        ex.spawn(serve(
            ex.clone(),
            vip,
            Arc::new(VipHandler(broker.clone())),
            limits,
            shutdown.clone(),
        ))
        .detach();
        ex.spawn(pull::hold_loop(broker.clone())).detach();
        ex.spawn(housekeeping_loop(broker.clone())).detach();
        ex.spawn(register::register_loop(broker.clone())).detach();
        ex.spawn(schedule::schedule_loop(broker.clone())).detach();
        ex.spawn(transaction::check_loop(broker.clone())).detach();
        log::info!(
            "broker {} ({}) serving on {} and VIP {}",
            broker.config.broker_name,
            broker.config.cluster_name,
            broker.config.bind_addr(),
            broker.config.vip_bind_addr()
        );
        Ok(broker)
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || self.shutdown.is_shutting_down()
    }

    /// First half of shutdown, before in-flight requests are awaited: refuse new
    /// work, answer parked pulls, and unregister from the NameServers so clients
    /// stop routing here.
    pub async fn begin_shutdown(self: &Arc<Self>) {
        self.stopping.store(true, Ordering::Release);
        for held in self.holds.take_all() {
            let answer = self.execute_pull(&held.conn, &held.request, false).await;
            if let Some(answer) = answer {
                held.conn.send(&answer).await;
            }
        }
        register::unregister_all(self).await;
    }

    /// Second half: persist the tables and close the store (flush, checkpoint,
    /// abort marker removed). Every step is tried; the error lists those that
    /// failed.
    pub async fn finish_shutdown(self: &Arc<Self>) -> Result<(), BrokerError> {
        let mut failures = Vec::new();
        if let Err(e) = self.offsets.persist() {
            failures.push(("consumer offsets", e));
        }
        if let Err(e) = self.topics.persist() {
            failures.push(("topics", e));
        }
        if let Err(e) = self.schedule.persist() {
            failures.push(("delay offsets", e));
        }
        let store = self.store.clone();
        if let Err(e) = smol::unblock(move || store.close()).await {
            failures.push(("store", e));
        }
        if failures.is_empty() {
            log::info!("broker {} stopped cleanly", self.config.broker_name);
            Ok(())
        } else {
            Err(BrokerError::Shutdown(failures))
        }
    }

    /// Asks for a registration with every NameServer now (a topic changed).
    pub fn register_soon(self: &Arc<Self>) {
        self.registrar.wake();
    }

    /// Tells every member of `group` that the group changed.
    pub fn notify_consumer_ids_changed(self: &Arc<Self>, group: &str) {
        let enabled = self
            .groups
            .get(group)
            .is_none_or(|g| g.notify_consumer_ids_changed_enable);
        if !enabled {
            return;
        }
        let conns = self.clients.consumer_connections(group);
        let group = group.to_owned();
        // Fire and forget: one-way requests to each member.
        self.ex
            .spawn(async move {
                for conn in conns {
                    let mut cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED);
                    cmd.put("consumerGroup", &group);
                    conn.send_oneway(cmd).await;
                }
            })
            .detach();
    }

    async fn dispatch(
        self: Arc<Self>,
        conn: Arc<Connection>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        use request::*;
        let response = match req.code {
            SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => {
                send::handle(&self, &conn, &req).await
            }
            PULL_MESSAGE => return self.execute_pull(&conn, &req, true).await,
            CONSUMER_SEND_MSG_BACK => schedule::send_back(&self, &req).await,
            END_TRANSACTION => transaction::end_transaction(&self, &req).await,
            QUERY_CONSUMER_OFFSET
            | UPDATE_CONSUMER_OFFSET
            | GET_MAX_OFFSET
            | GET_MIN_OFFSET
            | SEARCH_OFFSET_BY_TIMESTAMP
            | GET_EARLIEST_MSG_STORETIME
            | HEART_BEAT
            | UNREGISTER_CLIENT
            | GET_CONSUMER_LIST_BY_GROUP
            | CHECK_CLIENT_CONFIG
            | LOCK_BATCH_MQ
            | UNLOCK_BATCH_MQ => consumer::handle(&self, &conn, &req).await,
            code => match admin::handle(&self, &conn, &req).await {
                Some(response) => response,
                None => error_response(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    format!(" request type {code} not supported"),
                ),
            },
        };
        Some(response)
    }
}

impl RequestHandler for Broker {
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection>,
        request: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        Box::pin(self.dispatch(conn, request))
    }

    fn on_disconnect(&self, conn: &Arc<Connection>) {
        for group in self.clients.remove_connection(conn.id) {
            log::info!("consumer of {group} disconnected ({})", conn.peer);
            // `self` is not an Arc here; notify through the stored executor.
            let conns = self.clients.consumer_connections(&group);
            self.ex
                .spawn(async move {
                    for conn in conns {
                        let mut cmd =
                            RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED);
                        cmd.put("consumerGroup", &group);
                        conn.send_oneway(cmd).await;
                    }
                })
                .detach();
        }
    }
}

/// The VIP port (listenPort - 2) serves everything but PULL_MESSAGE, as in RocketMQ.
struct VipHandler(Arc<Broker>);

impl RequestHandler for VipHandler {
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection>,
        request: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        if request.code == request::PULL_MESSAGE {
            let answer = error_response(
                &request,
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {} not supported", request.code),
            );
            return Box::pin(async move { Some(answer) });
        }
        Box::pin(self.0.clone().dispatch(conn, request))
    }

    fn on_disconnect(&self, conn: &Arc<Connection>) {
        self.0.on_disconnect(conn);
    }
}

/// Persists offsets every `flushConsumerOffsetInterval` and expires clients
/// silent for 120 s (checked every 10 s), until shutdown.
async fn housekeeping_loop(broker: Arc<Broker>) {
    let tick = broker
        .config
        .flush_consumer_offset_interval
        .min(Duration::from_secs(10));
    let mut last_scan = Instant::now();
    loop {
        let stop = broker.shutdown.sleep(tick).await;
        if stop {
            return;
        }
        let b = broker.clone();
        if let Err(e) = smol::unblock(move || b.offsets.persist()).await {
            log::error!("persisting consumer offsets: {e}");
        }
        if last_scan.elapsed() >= Duration::from_secs(10) {
            last_scan = Instant::now();
            for group in broker.clients.remove_expired(Duration::from_secs(120)) {
                broker.notify_consumer_ids_changed(&group);
            }
            broker.locks.remove_expired();
        }
    }
}
