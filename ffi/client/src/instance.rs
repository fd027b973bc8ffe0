//! The client instance (RocketMQ's MQClientInstance): one per process and client
//! id, shared by every producer and consumer built on it. It owns the NameServer
//! list (with failover), the route cache (refreshed every 30 s), one multiplexed
//! connection per broker address (reconnected on demand), the heartbeats to every
//! broker (every 30 s), and the dispatch of requests brokers send to the client.
//!
//! It owns the executor every task of the library runs on, and the threads
//! that run it (`mq-client-<n>-<i>`, [`ClientConfig::executor_threads`] of
//! them). Producers and consumers hold the instance, and tasks hold it only
//! weakly (or for one request), so the instance lives while a handle to it,
//! a producer or a consumer does; when the last goes, or at
//! [`shutdown`](ClientInstance::shutdown), the threads stop and the tasks
//! left are dropped. A caller that is not async uses the `*_blocking`
//! wrappers of the producers and consumers, which block the calling thread
//! on the future ([`block_on`](crate::block_on)) and need no executor of its own.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use mq_protocol::body::{ConsumerData, HeartbeatData, MessageQueue, ProducerData, TopicRouteData};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, GetRouteInfoRequestHeader, UnregisterClientRequestHeader,
};

use async_executor::Task;

use super::connection::client_request;
use super::connection::{RemotingClient, RemotingError, RequestHandler};
use super::error::{Cause, ClientError, Result};
use super::runtime::Runtime;

/// Settings shared by every producer and consumer of one instance.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// NameServer addresses (`host:port`).
    pub namesrv_addrs: Vec<String>,
    /// The instance name; with the client IP it makes the client id.
    pub instance_name: String,
    /// The IP put in the client id.
    pub client_ip: String,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// How often routes are refreshed (`pollNameServerInterval`, 30 s).
    pub poll_name_server_interval: Duration,
    /// How often heartbeats go to every broker (`heartbeatBrokerInterval`, 30 s).
    pub heartbeat_broker_interval: Duration,
    /// How often consumers commit offsets (`persistConsumerOffsetInterval`, 5 s).
    pub persist_consumer_offset_interval: Duration,
    /// Threads running the instance's executor (2): they carry the
    /// connections, timers and the library's own tasks; listener calls and
    /// file writes go to the blocking pool instead. At least 1.
    pub executor_threads: usize,
    /// The AccessKey and SecretKey every request is signed with, for brokers
    /// with RocketMQ's plain ACL (`aclEnable=true`), as the Java client's
    /// `AclClientRPCHook` signs. `None` (the default) sends unsigned
    /// requests. Like Java's hook, it belongs to the instance: producers and
    /// consumers sharing an instance (one client id) share its credentials.
    pub credentials: Option<mq_protocol::acl::Credentials>,
}

impl ClientConfig {
    /// A configuration for the NameServers in `namesrv` (`;`-separated, as
    /// RocketMQ's `NAMESRV_ADDR`).
    pub fn new(namesrv: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        ClientConfig {
            namesrv_addrs: namesrv
                .split(';')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            // As Java does for the DEFAULT instance name: pid and a clock reading.
            instance_name: format!("{}#{nanos}", std::process::id()),
            client_ip: "127.0.0.1".into(),
            request_timeout: Duration::from_secs(3),
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
            executor_threads: 2,
            credentials: None,
        }
    }

    /// `clientIP@instanceName`, as brokers list consumers.
    pub fn client_id(&self) -> String {
        format!("{}@{}", self.client_ip, self.instance_name)
    }
}

/// A producer or consumer registered with an instance: what it puts in
/// heartbeats, and how it reacts to requests from brokers.
pub trait Member: Send + Sync {
    /// The producer group to announce, if this is a producer.
    fn producer_data(&self) -> Option<ProducerData> {
        None
    }
    /// The consumer group to announce, if this is a consumer.
    fn consumer_data(&self) -> Option<ConsumerData> {
        None
    }
    /// A request a broker sent (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE,
    /// ...); `None` if it is not for this member.
    fn on_server_request(
        &self,
        _broker: &str,
        _request: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        None
    }
    /// Topics whose routes this member needs refreshed.
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The shared client core.
pub struct ClientInstance {
    config: ClientConfig,
    client_id: String,
    /// The NameServer that answered last, tried first next time.
    namesrv_index: AtomicUsize,
    connections: Mutex<HashMap<String, Arc<RemotingClient>>>,
    /// Addresses whose last connect failed: until when to refuse, and the wait.
    backoff: Mutex<HashMap<String, (Instant, Duration)>>,
    /// Shared, so that a send reads its topic's route without a copy.
    routes: RwLock<HashMap<String, Arc<TopicRouteData>>>,
    members: Mutex<Vec<Weak<dyn Member>>>,
    closed: AtomicBool,
    /// The route refresh and heartbeat loops; cancelled at shutdown.
    tasks: Mutex<Vec<Task<()>>>,
    /// The executor every task of this instance (its consumers' and
    /// producers' included) runs on, and its threads.
    runtime: Runtime,
}

impl ClientInstance {
    /// Starts an instance: its threads, and its route refresh and heartbeat
    /// tasks, run until [`shutdown`](Self::shutdown) or until the instance is
    /// dropped.
    pub fn start(config: ClientConfig) -> Result<Arc<Self>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        if config.namesrv_addrs.is_empty() {
            return Err(ClientError::NoNameServer {
                tried: "no address configured".into(),
                last: None,
            });
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let runtime = Runtime::start(&format!("mq-client-{n}"), config.executor_threads).map_err(
            |source| ClientError::Io {
                what: "starting the client's threads".into(),
                source,
            },
        )?;
        let instance = Arc::new(ClientInstance {
            client_id: config.client_id(),
            config,
            namesrv_index: AtomicUsize::new(0),
            connections: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            routes: RwLock::new(HashMap::new()),
            members: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            runtime,
        });
        let weak = Arc::downgrade(&instance);
        let routes = instance.spawn(periodic(
            weak.clone(),
            instance.config.poll_name_server_interval,
            |i| Box::pin(async move { i.refresh_routes().await }),
        ));
        let heartbeats = instance.spawn(periodic(
            weak,
            instance.config.heartbeat_broker_interval,
            |i| Box::pin(async move { i.send_heartbeat_to_all_brokers().await }),
        ));
        instance
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(routes.into_iter().chain(heartbeats));
        Ok(instance)
    }

    /// Runs `future` on the instance's executor; `None` once the instance is
    /// shut down (the future is dropped unrun). Dropping the task cancels it.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<Task<T>> {
        self.runtime.spawn(future)
    }

    /// Runs `future` to its end on the instance's executor, unless the
    /// instance shuts down first (then it is dropped, run or not).
    pub(crate) fn spawn_detached(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn_detached(future);
    }

    /// [`spawn_detached`](Self::spawn_detached) with the first poll on the
    /// calling thread (see `Runtime::start_detached`).
    pub(crate) fn start_detached(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.runtime.start_detached(future);
    }

    /// The instance of this process for `config`'s client id: an existing one
    /// if it is still running (RocketMQ's MQClientManager keeps one per client
    /// id), otherwise a new one. The registry holds instances weakly: one is
    /// gone once its last user is.
    pub fn get_or_start(config: ClientConfig) -> Result<Arc<Self>> {
        static INSTANCES: OnceLock<Mutex<HashMap<String, Weak<ClientInstance>>>> = OnceLock::new();
        let registry = INSTANCES.get_or_init(Mutex::default);
        // A shut-down instance found here may have no other user left:
        // dropping it stops its threads, which must not happen under the
        // registry's lock (a thread being joined could be waiting for it).
        let mut replaced: Option<Arc<Self>> = None;
        let started = {
            let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
            registry.retain(|_, w| w.strong_count() > 0);
            let id = config.client_id();
            match registry.get(&id).and_then(Weak::upgrade) {
                Some(existing) if !existing.is_closed() => Ok(existing),
                existing => {
                    replaced = existing;
                    Self::start(config).inspect(|instance| {
                        registry.insert(id, Arc::downgrade(instance));
                    })
                }
            }
        };
        drop(replaced);
        started
    }

    /// The instance's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `clientIP@instanceName`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Adds a producer or consumer; it is forgotten when dropped. Brokers
    /// known already hear of a producer at once (a heartbeat in the
    /// background), as Java's producers announce themselves when they start
    /// (consumers do when they subscribe).
    pub fn register(self: &Arc<Self>, member: Weak<dyn Member>) {
        let producer = member
            .upgrade()
            .is_some_and(|m| m.producer_data().is_some());
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(member);
        if producer {
            self.heartbeat_soon(self.all_broker_addrs());
        }
    }

    fn members(&self) -> Vec<Arc<dyn Member>> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.strong_count() > 0);
        members.iter().filter_map(Weak::upgrade).collect()
    }

    /// The connection to `addr`, made on first use and remade after it closed.
    pub async fn connection(self: &Arc<Self>, addr: &str) -> Result<Arc<RemotingClient>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        if let Some(c) = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
        {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let weak = Arc::downgrade(self);
        let peer = addr.to_owned();
        let handler: RequestHandler = Arc::new(move |cmd: RemotingCommand| {
            let instance = weak.upgrade()?;
            instance
                .members()
                .iter()
                .find_map(|m| m.on_server_request(&peer, &cmd))
        });
        // Back off from an address that just refused: each failure doubles the
        // wait (100 ms up to 10 s), so a dead broker costs callers a quick error
        // instead of a connect timeout each.
        if let Some((until, _)) = self
            .backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
        {
            if Instant::now() < *until {
                return Err(ClientError::Remoting(RemotingError::Connect {
                    addr: addr.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "failed recently; backing off",
                    ),
                }));
            }
        }
        let connected = RemotingClient::connect_on(
            &self.runtime,
            addr,
            self.config.request_timeout,
            Some(handler),
            self.config.credentials.clone(),
        )
        .await;
        let client = match connected {
            Ok(client) => {
                self.backoff
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(addr);
                client
            }
            Err(e) => {
                let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
                let wait = backoff
                    .get(addr)
                    .map_or(Duration::from_millis(100), |(_, w)| {
                        (*w * 2).min(Duration::from_secs(10))
                    });
                backoff.insert(addr.to_owned(), (Instant::now() + wait, wait));
                return Err(e.into());
            }
        };
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another task may have connected meanwhile; keep one.
        let entry = connections
            .entry(addr.to_owned())
            .or_insert_with(|| client.clone());
        if entry.is_closed() {
            *entry = client;
        }
        Ok(entry.clone())
    }

    /// Sends a request to a broker and returns its response (any code).
    pub async fn invoke(
        self: &Arc<Self>,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke(cmd, timeout).await?)
    }

    /// [`invoke`](Self::invoke) with `body` in place of the command's own
    /// (a message's body, written once into the connection's outbox).
    pub(crate) async fn invoke_with_body(
        self: &Arc<Self>,
        addr: &str,
        cmd: RemotingCommand,
        body: &[u8],
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke_with_body(cmd, body, timeout).await?)
    }

    /// Sends a one-way request to a broker.
    pub async fn invoke_oneway(self: &Arc<Self>, addr: &str, cmd: RemotingCommand) -> Result<()> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke_oneway(cmd).await?)
    }

    /// [`invoke_oneway`](Self::invoke_oneway) with `body` in place of the
    /// command's own.
    pub(crate) async fn invoke_oneway_with_body(
        self: &Arc<Self>,
        addr: &str,
        cmd: RemotingCommand,
        body: &[u8],
    ) -> Result<()> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke_oneway_with_body(cmd, body).await?)
    }

    /// Sends a request to a NameServer, trying the next one when one fails.
    pub async fn invoke_namesrv(self: &Arc<Self>, cmd: RemotingCommand) -> Result<RemotingCommand> {
        if self.is_closed() {
            // Not "no NameServer reachable": none was tried.
            return Err(ClientError::Closed);
        }
        let addrs = &self.config.namesrv_addrs;
        let start = self.namesrv_index.load(Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..addrs.len() {
            let index = (start + i) % addrs.len();
            match self
                .invoke(&addrs[index], cmd.clone(), self.config.request_timeout)
                .await
            {
                Ok(resp) => {
                    self.namesrv_index.store(index, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => {
                    log::debug!("NameServer {} failed: {e}", addrs[index]);
                    last_error = Some(e);
                }
            }
        }
        Err(ClientError::NoNameServer {
            tried: addrs.join(";"),
            last: last_error.map(Cause::from),
        })
    }

    /// Asks a NameServer for a topic's route (not cached).
    pub async fn fetch_route(self: &Arc<Self>, topic: &str) -> Result<TopicRouteData> {
        let mut cmd = client_request(request::GET_ROUTEINFO_BY_TOPIC);
        GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            accept_standard_json_only: Some(true),
        }
        .encode(&mut cmd.ext_fields);
        let resp = self.invoke_namesrv(cmd).await?;
        match resp.code {
            response::SUCCESS => {
                TopicRouteData::decode(&resp.body).map_err(|e| ClientError::decode("route data", e))
            }
            response::TOPIC_NOT_EXIST => Err(ClientError::NoRoute(topic.to_owned())),
            _ => Err(ClientError::refused(resp)),
        }
    }

    /// The topic's route: cached, or fetched (and cached) on first use.
    pub async fn route(self: &Arc<Self>, topic: &str) -> Result<Arc<TopicRouteData>> {
        if let Some(route) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return Ok(Arc::clone(route));
        }
        self.update_route(topic).await
    }

    /// Fetches the topic's route now and caches it. Brokers it names that
    /// no cached route did get a heartbeat at once (in the background):
    /// a broker checks a transaction back, and balances a consumer group,
    /// only with the clients it has heard from, and the periodic heartbeat
    /// may be 30 s away.
    pub async fn update_route(self: &Arc<Self>, topic: &str) -> Result<Arc<TopicRouteData>> {
        let route = self.fetch_route(topic).await?;
        let (route, new) = {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            let known: HashSet<&String> = routes
                .values()
                .flat_map(|r| r.broker_datas.iter())
                .flat_map(|b| b.broker_addrs.values())
                .collect();
            let new: Vec<(String, i64, String)> = route
                .broker_datas
                .iter()
                .flat_map(|b| {
                    b.broker_addrs
                        .iter()
                        .map(|(id, addr)| (b.broker_name.clone(), *id, addr.clone()))
                })
                .filter(|(_, _, addr)| !known.contains(addr))
                .collect();
            // An unchanged route keeps its value: what was derived from
            // it (a producer's queue list) stays valid.
            let route = match routes.get(topic) {
                Some(old) if **old == route => Arc::clone(old),
                _ => {
                    let route = Arc::new(route);
                    routes.insert(topic.to_owned(), Arc::clone(&route));
                    route
                }
            };
            (route, new)
        };
        self.heartbeat_soon(new);
        Ok(route)
    }

    /// The master address of `broker_name`, from any cached route.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.broker_addr(broker_name, 0)
    }

    /// The address of broker `id` of `broker_name`, from any cached route.
    pub fn broker_addr(&self, broker_name: &str, id: i64) -> Option<String> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .find(|b| b.broker_name == broker_name)
            .and_then(|b| b.broker_addrs.get(&id).cloned())
    }

    /// The address of broker `id` of the broker holding `mq` (its master when
    /// `id` is not known), refreshing the topic's route once when no cached
    /// route names the broker.
    pub(crate) async fn queue_broker_addr(
        self: &Arc<Self>,
        mq: &MessageQueue,
        id: i64,
    ) -> Result<String> {
        if let Some(addr) = self
            .broker_addr(&mq.broker_name, id)
            .or_else(|| self.master_addr(&mq.broker_name))
        {
            return Ok(addr);
        }
        self.update_route(&mq.topic).await?;
        self.master_addr(&mq.broker_name)
            .ok_or_else(|| ClientError::NoBrokerAddress(mq.broker_name.clone()))
    }

    /// The master's address of the broker holding `mq`, as
    /// [`queue_broker_addr`](Self::queue_broker_addr) finds it.
    pub(crate) async fn queue_master_addr(self: &Arc<Self>, mq: &MessageQueue) -> Result<String> {
        self.queue_broker_addr(mq, 0).await
    }

    /// Every broker address (masters and slaves) of every cached route.
    pub fn all_broker_addrs(&self) -> Vec<(String, i64, String)> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(String, i64, String)> = routes
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .flat_map(|b| {
                b.broker_addrs
                    .iter()
                    .map(|(id, addr)| (b.broker_name.clone(), *id, addr.clone()))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    async fn refresh_routes(self: &Arc<Self>) {
        let mut topics: Vec<String> = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for member in self.members() {
            topics.extend(member.topics());
        }
        topics.sort();
        topics.dedup();
        for topic in topics {
            if let Err(e) = self.update_route(&topic).await {
                log::debug!("refreshing route of {topic}: {e}");
            }
        }
    }

    /// The heartbeat every broker gets: all producer and consumer groups.
    pub fn heartbeat_data(&self) -> HeartbeatData {
        let members = self.members();
        HeartbeatData {
            client_id: self.client_id.clone(),
            producer_data_set: members.iter().filter_map(|m| m.producer_data()).collect(),
            consumer_data_set: members.iter().filter_map(|m| m.consumer_data()).collect(),
        }
    }

    /// Sends a heartbeat to every master (and, with consumers, every slave).
    pub async fn send_heartbeat_to_all_brokers(self: &Arc<Self>) {
        self.send_heartbeat_to(self.all_broker_addrs()).await;
    }

    /// [`send_heartbeat_to`](Self::send_heartbeat_to) `brokers` in the
    /// background, if there are members to announce.
    fn heartbeat_soon(self: &Arc<Self>, brokers: Vec<(String, i64, String)>) {
        if brokers.is_empty() || self.is_closed() {
            return;
        }
        let weak = Arc::downgrade(self);
        // Detached: a heartbeat missed here is sent by the periodic one.
        self.spawn_detached(async move {
            if let Some(instance) = weak.upgrade() {
                instance.send_heartbeat_to(brokers).await;
            }
        });
    }

    /// Sends a heartbeat to the masters among `brokers` (and, with
    /// consumers, the slaves).
    async fn send_heartbeat_to(self: &Arc<Self>, brokers: Vec<(String, i64, String)>) {
        let data = self.heartbeat_data();
        if data.producer_data_set.is_empty() && data.consumer_data_set.is_empty() {
            return;
        }
        let body = data.encode();
        let has_consumers = !data.consumer_data_set.is_empty();
        for (name, id, addr) in brokers {
            if id != 0 && !has_consumers {
                continue;
            }
            let mut cmd = client_request(request::HEART_BEAT);
            cmd.body = body.clone();
            match self.invoke(&addr, cmd, self.config.request_timeout).await {
                Ok(resp) if resp.code == response::SUCCESS => {}
                Ok(resp) => log::warn!(
                    "heartbeat to {name} ({addr}) refused: {} {}",
                    resp.code,
                    resp.remark.unwrap_or_default()
                ),
                Err(e) => log::debug!("heartbeat to {name} ({addr}): {e}"),
            }
        }
    }

    /// Tells every broker a group leaves (UNREGISTER_CLIENT).
    pub async fn unregister_group(
        self: &Arc<Self>,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) {
        for (_, id, addr) in self.all_broker_addrs() {
            if id != 0 && consumer_group.is_none() {
                continue;
            }
            let mut cmd = RemotingCommand::request(request::UNREGISTER_CLIENT);
            UnregisterClientRequestHeader {
                client_id: self.client_id.clone(),
                producer_group: producer_group.map(str::to_owned),
                consumer_group: consumer_group.map(str::to_owned),
            }
            .encode(&mut cmd.ext_fields);
            if let Err(e) = self.invoke(&addr, cmd, self.config.request_timeout).await {
                log::debug!("unregistering from {addr}: {e}");
            }
        }
    }

    /// Stops the background tasks, closes every connection and stops the
    /// instance's threads; the tasks left (its producers' and consumers'
    /// included) are dropped, and calls that need the brokers fail with
    /// [`ClientError::Closed`]. Called from any other thread, it returns once
    /// the threads have exited, so it must not be called while holding a lock
    /// a callback (`send_async`'s) waits for; called from one of them (a
    /// callback), it lets them exit after it returns. Also done when the
    /// last handle is dropped.
    pub fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Dropping a Task cancels it.
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        for (_, conn) in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            conn.close();
        }
        self.runtime.stop();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for ClientInstance {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type Job =
    fn(Arc<ClientInstance>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `job` every `every` while the instance lives.
async fn periodic(instance: Weak<ClientInstance>, every: Duration, job: Job) {
    loop {
        async_io::Timer::after(every).await;
        let Some(i) = instance.upgrade() else { return };
        if i.is_closed() {
            return;
        }
        job(i).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_per_client_id() {
        let mut config = ClientConfig::new("127.0.0.1:1");
        config.instance_name = "registry-test".into();
        let a = ClientInstance::get_or_start(config.clone()).unwrap();
        let b = ClientInstance::get_or_start(config.clone()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut other = config.clone();
        other.instance_name = "registry-test-2".into();
        let c = ClientInstance::get_or_start(other).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        a.shutdown();
        let d = ClientInstance::get_or_start(config).unwrap();
        assert!(!Arc::ptr_eq(&a, &d), "a shut down instance is replaced");
    }

    #[test]
    fn a_refused_address_is_backed_off() {
        let instance = ClientInstance::start(ClientConfig::new("127.0.0.1:1")).unwrap();
        // Port 1 on loopback refuses at once.
        let first = async_io::block_on(instance.connection("127.0.0.1:1"));
        assert!(first.is_err());
        let Err(second) = async_io::block_on(instance.connection("127.0.0.1:1")) else {
            panic!("a second connect right after a refusal should be backed off");
        };
        assert!(second.to_string().contains("backing off"), "{second}");
    }

    #[test]
    fn no_namesrv_is_a_clear_error() {
        assert!(matches!(
            ClientInstance::start(ClientConfig::new(" ; ")),
            Err(ClientError::NoNameServer { .. })
        ));
    }
}
