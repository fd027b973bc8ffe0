//! The Broker: serves producers, consumers and admin tools over RocketMQ's
//! remoting protocol, on top of the message store.
//!
//! A request goes through one table, `Broker::dispatch`, from its code to
//! one handler function; the codes the broker does not serve are listed there
//! too. Around it:
//!
//! - `handle`: the request handlers, one file per family (send, pull,
//!   offsets, clients, topics, ...), one function per code.
//! - `state`: the broker's tables (topics, offsets, groups, clients, locks,
//!   held pulls, ...), persisted under `<store root>/config/` ([`persist`]).
//! - `task`: the background loops (NameServer registration, long polling,
//!   delayed delivery, transaction check, housekeeping, statistics sampling).
//! - `stats`: what admin tools and the metrics endpoint read (rates, totals,
//!   latencies), counted on the request path.
//! - `delay`, [`transaction`]: how delayed and half messages are stored,
//!   shared by their handlers and their loops.
//! - `metrics`: what the Prometheus endpoint (`metricsPort`) shows.
//! - [`config`]: `broker.conf` keys. [`error`]: [`BrokerError`].
//!
//! With `aclEnable`, every request first passes [`crate::acl`] (one branch
//! when it is off).

pub mod config;
mod delay;
pub mod error;
mod handle;
mod metrics;
pub mod persist;
mod settings;
mod state;
mod stats;
mod task;
pub mod transaction;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_executor::Executor;

use mq_protocol::codes::request;
use mq_protocol::frame::RemotingCommand;

pub use config::BrokerConfig;
pub use error::BrokerError;

use crate::acl::Acl;
use crate::ha::{HaClient, HaService};

use crate::server::{serve, BoxFuture, Connection, RequestHandler, ServerLimits};
use crate::shutdown::Shutdown;
use crate::store::MessageStore;
use state::{
    clients::ClientManager, delay_offsets::ScheduleOffsets, groups::GroupManager, hold::PullHolds,
    locks::LockManager, offsets::OffsetManager, topics::TopicManager,
    transactions::TransactionState,
};

/// A running broker.
pub struct Broker {
    config: BrokerConfig,
    /// The message store.
    pub(crate) store: Arc<MessageStore>,
    /// Topic configurations.
    pub(crate) topics: TopicManager,
    /// Committed consumer offsets.
    pub(crate) offsets: OffsetManager,
    /// Subscription group configurations.
    pub(crate) groups: GroupManager,
    /// Producers and consumers.
    pub(crate) clients: ClientManager,
    /// Parked pulls.
    pub(crate) holds: PullHolds,
    /// Queue locks of orderly consumers.
    pub(crate) locks: LockManager,
    /// Delivery progress of each delay level.
    pub(crate) schedule: ScheduleOffsets,
    /// Which half messages have been decided.
    pub(crate) transactions: TransactionState,
    /// Timings of the transaction check.
    transaction_config: transaction::TransactionConfig,
    /// Connections to the NameServers.
    registrar: task::register::Registrar,
    /// Access control, when `aclEnable` is set.
    pub(crate) acl: Option<Arc<Acl>>,
    /// Replication: a master's HA service, or a slave's client.
    pub(crate) replication: Replication,
    /// A slave's master (its main address, from the NameServers' answer to
    /// each registration), whose topics, offsets and groups it copies.
    master_addr: Mutex<Option<String>>,
    ex: Arc<Executor<'static>>,
    shutdown: Shutdown,
    /// Set once shutdown begins: sends are refused, pulls not parked.
    stopping: AtomicBool,
    /// When the broker started, for runtime info.
    started: Instant,
    /// Start time in ms since the epoch.
    boot_timestamp: i64,
    /// Statistics for admin tools and the metrics endpoint.
    pub(crate) stats: stats::BrokerStats,
}

/// Which side of replication a broker is.
pub(crate) enum Replication {
    /// ASYNC_MASTER or SYNC_MASTER: slaves connect to its HA port.
    Master(Arc<HaService>),
    /// SLAVE: it connects to its master.
    Slave(Arc<HaClient>),
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
        let store = blocking::unblock(move || MessageStore::open(store_config))
            .await
            .map_err(|source| BrokerError::OpenStore {
                path: root.clone(),
                source,
            })?;
        let topics = TopicManager::load(
            &root,
            &config.cluster_name,
            &config.broker_name,
            config.auto_create_topic_enable,
            config.default_topic_queue_nums,
        )?;
        let acl = match (config.acl_enable, config.acl_files()) {
            (false, _) => None,
            (true, None) => {
                return Err(BrokerError::Acl(
                    "aclEnable=true but no accounts file: set plainAclFile in broker.conf \
                     or ROCKETMQ_HOME (for $ROCKETMQ_HOME/conf/plain_acl.yml)"
                        .into(),
                ))
            }
            (true, Some((path, dir))) => Some(Arc::new(
                Acl::open(path, dir).map_err(|e| BrokerError::Acl(e.to_string()))?,
            )),
        };
        let offsets = OffsetManager::load(&root)?;
        let groups = GroupManager::load(&root, config.auto_create_subscription_group)?;
        let schedule = ScheduleOffsets::load(&root)?;
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
        let metrics_listener = match config.metrics_bind_addr() {
            Some(addr) => Some(
                async_net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BrokerError::BindMetrics { addr, source })?,
            ),
            None => None,
        };
        let ha_listener = if config.broker_role == config::BrokerRole::Slave {
            None
        } else {
            let addr = config.ha_bind_addr();
            Some(
                async_net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BrokerError::BindHa { addr, source })?,
            )
        };
        let replication = match ha_listener {
            Some(_) => Replication::Master(HaService::new(store.clone(), config.ha.clone())),
            None => Replication::Slave(HaClient::new(store.clone(), config.ha.clone())),
        };
        let transaction_config = config.transaction.clone();
        let boot_timestamp = mq_protocol::time::now_ms();
        let config_cluster = config.cluster_name.clone();
        let broker = Arc::new(Broker {
            registrar: task::register::Registrar::new(
                config.namesrv_addrs.clone(),
                config.credentials.clone(),
            ),
            acl,
            replication,
            master_addr: Mutex::new(None),
            config,
            store,
            topics,
            offsets,
            groups,
            clients: ClientManager::default(),
            holds: PullHolds::new(),
            locks: LockManager::default(),
            schedule,
            transactions: TransactionState::default(),
            transaction_config,
            ex: ex.clone(),
            shutdown: shutdown.clone(),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
            boot_timestamp,
            stats: stats::BrokerStats::new(&config_cluster, boot_timestamp),
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
        if let Some(listener) = metrics_listener {
            let source = Arc::new(metrics::BrokerMetrics {
                broker: broker.clone(),
                connections: limits.open_connections.clone(),
            });
            crate::metrics::http::start(&ex, "broker", listener, source, &shutdown);
        }
        // Server and background tasks run until shutdown; detached on purpose.
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
        ex.spawn(task::hold::hold_loop(broker.clone())).detach();
        if let Some(acl) = &broker.acl {
            // Runs until shutdown; detached like the other loops.
            ex.spawn(acl.clone().watch(shutdown.clone())).detach();
        }
        ex.spawn(task::housekeeping::housekeeping_loop(broker.clone()))
            .detach();
        ex.spawn(task::register::register_loop(broker.clone()))
            .detach();
        ex.spawn(task::stats::sample_loop(broker.clone())).detach();
        match (&broker.replication, ha_listener) {
            (Replication::Master(ha), Some(listener)) => {
                ex.spawn(ha.clone().serve(ex.clone(), listener, shutdown.clone()))
                    .detach();
                // Delayed delivery and transaction checks write to the log:
                // masters only, as in RocketMQ.
                ex.spawn(task::schedule::schedule_loop(broker.clone()))
                    .detach();
                ex.spawn(task::transaction_check::check_loop(broker.clone()))
                    .detach();
            }
            (Replication::Slave(client), _) => {
                ex.spawn(client.clone().run(shutdown.clone())).detach();
                ex.spawn(task::slave_sync::sync_loop(broker.clone()))
                    .detach();
            }
            (Replication::Master(_), None) => unreachable!("a master binds its HA port"),
        }
        log::info!(
            "broker {} ({}, {} id {}) serving on {} and VIP {}{}",
            broker.config.broker_name,
            broker.config.cluster_name,
            broker.config.role_name(),
            broker.config.broker_id,
            broker.config.bind_addr(),
            broker.config.vip_bind_addr(),
            match &broker.replication {
                Replication::Master(_) => format!(", HA on {}", broker.config.ha_bind_addr()),
                Replication::Slave(_) => String::new(),
            }
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
            handle::pull::answer_held(self, &held).await;
        }
        task::register::unregister_all(self).await;
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
        if let Err(e) = blocking::unblock(move || store.close()).await {
            failures.push(("store", e));
        }
        if failures.is_empty() {
            log::info!("broker {} stopped cleanly", self.config.broker_name);
            Ok(())
        } else {
            Err(BrokerError::Shutdown(failures))
        }
    }

    /// A slave's master, as the NameServers said last (`None` on a master, or
    /// while the master is not registered).
    pub(crate) fn master_addr(&self) -> Option<String> {
        self.master_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records what a NameServer answered a slave's registration: its
    /// master's address and HA address.
    pub(crate) fn set_master(&self, addr: Option<String>, ha_addr: Option<String>) {
        let Replication::Slave(client) = &self.replication else {
            return;
        };
        if let Some(ha) = ha_addr.filter(|a| !a.is_empty()) {
            client.set_master(&ha);
        }
        let mut master = self
            .master_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *master != addr {
            log::info!(
                "master of {} is now {}",
                self.config.broker_name,
                addr.as_deref().unwrap_or("(not registered)")
            );
            *master = addr;
        }
    }

    /// Whether this is a slave that has not learned its master's address
    /// from a registration yet (its master registered after it did, or is
    /// gone).
    pub(crate) fn awaits_master(&self) -> bool {
        matches!(self.replication, Replication::Slave(_))
            && self
                .master_addr
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none()
    }

    /// Asks for a registration with every NameServer now (a topic changed).
    pub(crate) fn register_soon(&self) {
        self.registrar.wake();
    }

    /// Tells every member of `group` that the group changed, unless the
    /// group's `notifyConsumerIdsChangedEnable` is off.
    pub(crate) fn notify_consumer_ids_changed(&self, group: &str) {
        let enabled = self
            .groups
            .get(group)
            .is_none_or(|g| g.notify_consumer_ids_changed_enable);
        if enabled {
            self.notify_members(group.to_owned());
        }
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED to every member of `group`.
    fn notify_members(&self, group: String) {
        let conns = self.clients.consumer_connections(&group);
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

    /// Counts a request of a kind RocketMQ runs on its own thread pool as in
    /// flight until the returned ticket drops.
    fn in_flight(&self, code: i32) -> Option<stats::in_flight::Ticket<'_>> {
        use request::*;
        let tracker = match code {
            SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE | CONSUMER_SEND_MSG_BACK => {
                &self.stats.sends
            }
            PULL_MESSAGE => &self.stats.pulls,
            QUERY_MESSAGE | VIEW_MESSAGE_BY_ID => &self.stats.queries,
            END_TRANSACTION => &self.stats.end_transactions,
            _ => return None,
        };
        Some(tracker.begin(mq_protocol::time::now_ms()))
    }

    /// The request table: from each code to its handler, and the codes the
    /// broker does not serve. `None` when there is nothing to answer yet (a
    /// parked pull).
    async fn dispatch(
        self: Arc<Self>,
        conn: Arc<Connection>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        use handle::{
            acl, admin, clients, groups, locks, messages, offsets, pull, send, send_back, stats,
            topics, transaction,
        };
        use request::*;
        if let Some(acl) = &self.acl {
            if let Err(reason) = acl.check(conn.peer.ip(), &req) {
                return acl.refuse(conn.peer, &req, &reason);
            }
        }
        let (b, c, r) = (&*self, &conn, &req);
        let _in_flight = self.in_flight(req.code);
        let reply = match req.code {
            // Producers.
            SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => {
                send::send_message(b, c, r).await
            }
            END_TRANSACTION => transaction::end_transaction(b, r).await,
            // Consumers.
            PULL_MESSAGE => match pull::pull_message(b, c, r, true).await {
                Some(reply) => reply,
                // Parked: the hold loop answers it.
                None => return None,
            },
            CONSUMER_SEND_MSG_BACK => send_back::consumer_send_msg_back(b, r).await,
            QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(b, r),
            UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(b, r),
            GET_MAX_OFFSET => offsets::get_max_offset(b, r),
            GET_MIN_OFFSET => offsets::get_min_offset(b, r),
            SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_offset_by_timestamp(b, r),
            GET_EARLIEST_MSG_STORETIME => offsets::get_earliest_msg_storetime(b, r),
            LOCK_BATCH_MQ => locks::lock_batch_mq(b, r),
            UNLOCK_BATCH_MQ => locks::unlock_batch_mq(b, r),
            // Clients.
            HEART_BEAT => clients::heart_beat(b, c, r),
            UNREGISTER_CLIENT => clients::unregister_client(b, c, r),
            CHECK_CLIENT_CONFIG => clients::check_client_config(r),
            GET_CONSUMER_LIST_BY_GROUP => clients::get_consumer_list_by_group(b, r),
            GET_CONSUMER_CONNECTION_LIST => clients::get_consumer_connection_list(b, r),
            GET_PRODUCER_CONNECTION_LIST => clients::get_producer_connection_list(b, r),
            // Topics.
            UPDATE_AND_CREATE_TOPIC => topics::update_and_create_topic(b, r),
            DELETE_TOPIC_IN_BROKER => topics::delete_topic_in_broker(b, r),
            GET_ALL_TOPIC_CONFIG => topics::get_all_topic_config(b, r),
            GET_SYSTEM_TOPIC_LIST_FROM_BROKER => topics::get_system_topic_list_from_broker(b, r),
            GET_TOPIC_STATS_INFO => topics::get_topic_stats_info(b, r),
            QUERY_TOPIC_CONSUME_BY_WHO => topics::query_topic_consume_by_who(b, r),
            // Subscription groups.
            UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
                groups::update_and_create_subscriptiongroup(b, r)
            }
            GET_ALL_SUBSCRIPTIONGROUP_CONFIG => groups::get_all_subscriptiongroup_config(b, r),
            DELETE_SUBSCRIPTIONGROUP => groups::delete_subscriptiongroup(b, r),
            // Offsets, as admin tools and slaves see them.
            GET_CONSUME_STATS => offsets::get_consume_stats(b, r),
            GET_ALL_CONSUMER_OFFSET => offsets::get_all_consumer_offset(b, r),
            GET_ALL_DELAY_OFFSET => offsets::get_all_delay_offset(b, r),
            INVOKE_BROKER_TO_RESET_OFFSET => offsets::invoke_broker_to_reset_offset(b, r).await,
            // Messages.
            QUERY_MESSAGE => messages::query_message(b, r),
            VIEW_MESSAGE_BY_ID => messages::view_message_by_id(b, r),
            QUERY_CONSUME_QUEUE => messages::query_consume_queue(b, r),
            // The broker itself.
            GET_BROKER_RUNTIME_INFO => admin::get_broker_runtime_info(b, r),
            GET_BROKER_CONFIG => admin::get_broker_config(b, r),
            DELETE_EXPIRED_COMMITLOG => admin::delete_expired_commitlog(b, r).await,
            VIEW_BROKER_STATS_DATA => stats::view_broker_stats_data(b, r),
            GET_BROKER_CONSUME_STATS => stats::get_broker_consume_stats(b, r),
            // Access control.
            UPDATE_AND_CREATE_ACL_CONFIG => acl::update_and_create_acl_config(b, r).await,
            DELETE_ACL_CONFIG => acl::delete_acl_config(b, r).await,
            UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => acl::update_global_white_addrs_config(b, r).await,
            GET_BROKER_CLUSTER_ACL_INFO => acl::get_broker_cluster_acl_info(b, r),
            GET_BROKER_CLUSTER_ACL_CONFIG => acl::get_broker_cluster_acl_config(b, r),
            // What a RocketMQ 4.9 broker serves and mq does not.
            UPDATE_BROKER_CONFIG
            | INVOKE_BROKER_TO_GET_CONSUMER_STATUS
            | QUERY_CONSUME_TIME_SPAN
            | CLEAN_EXPIRED_CONSUMEQUEUE
            | GET_CONSUMER_RUNNING_INFO
            | QUERY_CORRECTION_OFFSET
            | CONSUME_MESSAGE_DIRECTLY
            | CLONE_GROUP_OFFSET
            | CLEAN_UNUSED_TOPIC
            | RESUME_CHECK_HALF_MESSAGE
            | SEND_REPLY_MESSAGE
            | SEND_REPLY_MESSAGE_V2
            | GET_ALL_PRODUCER_INFO => Err(BrokerError::NotSupported(req.code)),
            // Codes for NameServers or clients, and codes nobody defined.
            code => Err(BrokerError::NotSupported(code)),
        };
        Some(handle::respond(&req, reply))
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
            self.notify_members(group);
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
            let answer = handle::respond(&request, Err(BrokerError::NotSupported(request.code)));
            return Box::pin(async move { Some(answer) });
        }
        Box::pin(self.0.clone().dispatch(conn, request))
    }

    fn on_disconnect(&self, conn: &Arc<Connection>) {
        self.0.on_disconnect(conn);
    }
}
