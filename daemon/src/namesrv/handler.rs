//! The NameServer's request codes (protocol reference §3.2, §4.12), as
//! RocketMQ 4.9's `DefaultRequestProcessor`, with three deliberate differences:
//! an unknown code is answered REQUEST_CODE_NOT_SUPPORTED (RocketMQ stays
//! silent and lets the caller time out), a compressed registration body is
//! refused with a remark saying so, and KV configuration lives in memory only.
//!
//! Every request gets exactly one response (none for one-way requests, which
//! the remoting layer drops): a malformed request is SYSTEM_ERROR with a remark
//! naming what was wrong, never a closed connection. The work is synchronous
//! and short; no lock is held across an `.await` because there is none.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use thiserror::Error;

use mq_protocol::body::{DataVersion, RegisterBrokerBody, TopicConfigSerializeWrapper};
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::fastjson;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    AddWritePermResponseHeader, BrokerIdentityRequestHeader, BrokerNameRequestHeader,
    CommandHeader, GetKvConfigResponseHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, HeaderError, KvConfigRequestHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    TopicRequestHeader, WipeWritePermResponseHeader,
};

use super::config::{ConfigError, NamesrvConfig};
use super::kv::{KvConfig, ORDER_TOPIC_CONFIG};
use super::route::{BrokerRegistration, RouteTable};
use crate::acl::Acl;
use crate::server::{error_response, BoxFuture, Connection, RequestHandler};

/// Ordinal of `MQVersion.Version.V3_0_11`: REGISTER_BROKER requests from this
/// version on carry a `RegisterBrokerBody` (topics plus filter servers), older
/// ones a bare `TopicConfigSerializeWrapper`.
const V3_0_11: i32 = 37;

/// Ordinal of `MQVersion.Version.V4_9_4`: clients from this version on get
/// routes in standard JSON (quoted broker-id keys).
const V4_9_4: i32 = 401;

/// RocketMQ's TOPIC_NOT_EXIST remark ends with this pointer
/// (`FAQUrl.suggestTodo(APPLY_TOPIC_URL)`); clients log it verbatim.
const APPLY_TOPIC_HINT: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// Why a request could not be served. Each becomes an error response; the
/// connection stays open.
#[derive(Debug, Error)]
enum RequestError {
    /// A required header field is missing or a field has a bad value; the
    /// message names the field.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The request needs a body and has none.
    #[error("the {0} body is missing")]
    MissingBody(&'static str),
    /// The body does not decode.
    #[error("cannot decode the {what} body: {why}")]
    Body {
        /// The body type expected.
        what: &'static str,
        /// What went wrong.
        why: String,
    },
    /// REGISTER_BROKER's `bodyCrc32` does not match its body (RocketMQ's remark).
    #[error("crc32 not match")]
    CrcMismatch,
    /// REGISTER_BROKER with `compressed=true`.
    #[error(
        "compressed broker registration is not supported by mq: \
         set compressedRegister=false on the broker"
    )]
    Compressed,
    /// UPDATE_NAMESRV_CONFIG refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A code the NameServer does not serve (RemotingCommand's remark).
    #[error(" request type {0} not supported")]
    NotSupported(i32),
}

impl RequestError {
    /// The response code.
    fn code(&self) -> i32 {
        match self {
            RequestError::NotSupported(_) => resp::REQUEST_CODE_NOT_SUPPORTED,
            RequestError::Config(ConfigError::Path(_)) => resp::NO_PERMISSION,
            _ => resp::SYSTEM_ERROR,
        }
    }
}

/// The NameServer's state and request dispatch.
#[derive(Debug)]
pub(crate) struct NamesrvHandler {
    /// Brokers, topics and liveness; one lock, as RocketMQ's RouteInfoManager.
    routes: RwLock<RouteTable>,
    /// KV configuration; never locked together with `routes`.
    kv: RwLock<KvConfig>,
    /// Settings, changeable with UPDATE_NAMESRV_CONFIG.
    config: RwLock<NamesrvConfig>,
    /// Who may send the write codes, when an ACL file is given.
    acl: Option<Arc<Acl>>,
}

/// A read guard, even if a panicking thread poisoned the lock: the tables
/// stay consistent between statements, and one bug must not stop the server.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// A write guard; see [`read`].
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn success(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, resp::SUCCESS, None)
}

fn success_with_body(request: &RemotingCommand, body: Vec<u8>) -> RemotingCommand {
    let mut response = success(request);
    response.body = body;
    response
}

fn decode_header<H: CommandHeader>(request: &RemotingCommand) -> Result<H, RequestError> {
    Ok(H::decode(&request.ext_fields)?)
}

fn decode_body<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T, RequestError> {
    let text = std::str::from_utf8(body).map_err(|e| RequestError::Body {
        what,
        why: format!("not UTF-8 (bad byte at {})", e.valid_up_to()),
    })?;
    fastjson::from_str(text).map_err(|e| RequestError::Body {
        what,
        why: e.to_string(),
    })
}

/// A required field that a shared header struct declares optional.
fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str, RequestError> {
    value
        .as_deref()
        .ok_or(RequestError::Header(HeaderError::Missing(field)))
}

impl NamesrvHandler {
    /// A NameServer with empty tables.
    pub(crate) fn new(config: NamesrvConfig) -> Self {
        NamesrvHandler {
            routes: RwLock::new(RouteTable::new()),
            kv: RwLock::new(KvConfig::default()),
            config: RwLock::new(config),
            acl: None,
        }
    }

    /// How many clusters, live broker addresses and topics are registered.
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        read(&self.routes).sizes()
    }

    /// The same NameServer, checking the write codes against `acl`.
    pub(crate) fn with_acl(mut self, acl: Option<Arc<Acl>>) -> Self {
        self.acl = acl;
        self
    }

    /// The current liveness scan interval.
    pub(crate) fn scan_interval(&self) -> Duration {
        read(&self.config).scan_interval
    }

    /// Drops brokers silent for longer than the expiry; returns how many.
    pub(crate) fn scan(&self, now: Instant) -> usize {
        let expiry = read(&self.config).broker_expiry;
        write(&self.routes).remove_expired(now, expiry)
    }

    /// Serves one request from connection `conn_id`.
    pub(crate) fn process(&self, conn_id: u64, request: &RemotingCommand) -> RemotingCommand {
        log::debug!(
            "request {} (opaque {}) from connection {conn_id}",
            request.code,
            request.opaque
        );
        match self.dispatch(conn_id, request) {
            Ok(response) => response,
            Err(e) => {
                log::debug!(
                    "request {} from connection {conn_id} refused: {e}",
                    request.code
                );
                error_response(request, e.code(), e.to_string())
            }
        }
    }

    fn dispatch(
        &self,
        conn_id: u64,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, RequestError> {
        match request.code {
            req::PUT_KV_CONFIG => self.put_kv_config(request),
            req::GET_KV_CONFIG => self.get_kv_config(request),
            req::DELETE_KV_CONFIG => self.delete_kv_config(request),
            req::GET_KVLIST_BY_NAMESPACE => self.get_kv_list(request),
            req::QUERY_DATA_VERSION => self.query_data_version(request),
            req::REGISTER_BROKER => self.register_broker(conn_id, request),
            req::UNREGISTER_BROKER => self.unregister_broker(request),
            req::GET_ROUTEINFO_BY_TOPIC => self.route_by_topic(request),
            req::GET_BROKER_CLUSTER_INFO => Ok(success_with_body(
                request,
                read(&self.routes).cluster_info().encode(),
            )),
            req::WIPE_WRITE_PERM_OF_BROKER => self.wipe_write_perm(request),
            req::ADD_WRITE_PERM_OF_BROKER => self.add_write_perm(request),
            req::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => Ok(success_with_body(
                request,
                read(&self.routes).all_topics().encode(),
            )),
            req::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(request),
            req::GET_TOPICS_BY_CLUSTER => {
                let header: GetTopicsByClusterRequestHeader = decode_header(request)?;
                let list = read(&self.routes).topics_by_cluster(&header.cluster);
                Ok(success_with_body(request, list.encode()))
            }
            req::GET_SYSTEM_TOPIC_LIST_FROM_NS => Ok(success_with_body(
                request,
                read(&self.routes).system_topics().encode(),
            )),
            req::GET_UNIT_TOPIC_LIST => Ok(success_with_body(
                request,
                read(&self.routes).unit_topics().encode(),
            )),
            req::GET_HAS_UNIT_SUB_TOPIC_LIST => Ok(success_with_body(
                request,
                read(&self.routes).has_unit_sub_topics().encode(),
            )),
            req::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => Ok(success_with_body(
                request,
                read(&self.routes).has_unit_sub_ununit_topics().encode(),
            )),
            req::UPDATE_NAMESRV_CONFIG => self.update_config(request),
            req::GET_NAMESRV_CONFIG => {
                let text = read(&self.config).to_properties();
                Ok(success_with_body(request, text.into_bytes()))
            }
            other => Err(RequestError::NotSupported(other)),
        }
    }

    fn put_kv_config(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: KvConfigRequestHeader = decode_header(request)?;
        let key = required(&header.key, "key")?;
        let value = required(&header.value, "value")?;
        write(&self.kv).put(&header.namespace, key, value);
        Ok(success(request))
    }

    fn get_kv_config(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: KvConfigRequestHeader = decode_header(request)?;
        let key = required(&header.key, "key")?;
        let value = read(&self.kv)
            .get(&header.namespace, key)
            .map(str::to_owned);
        let Some(value) = value else {
            return Ok(error_response(
                request,
                resp::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {} Key: {key}", header.namespace),
            ));
        };
        let mut response = success(request);
        GetKvConfigResponseHeader { value: Some(value) }.encode(&mut response.ext_fields);
        Ok(response)
    }

    fn delete_kv_config(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: KvConfigRequestHeader = decode_header(request)?;
        let key = required(&header.key, "key")?;
        // Deleting what is not there succeeds, as in RocketMQ.
        write(&self.kv).delete(&header.namespace, key);
        Ok(success(request))
    }

    fn get_kv_list(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: KvConfigRequestHeader = decode_header(request)?;
        match read(&self.kv).namespace(&header.namespace) {
            Some(table) => Ok(success_with_body(request, table.encode())),
            None => Ok(error_response(
                request,
                resp::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {}", header.namespace),
            )),
        }
    }

    fn register_broker(
        &self,
        conn_id: u64,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, RequestError> {
        let header: RegisterBrokerRequestHeader = decode_header(request)?;
        let crc = header.body_crc32.unwrap_or(0);
        if crc != 0 {
            // Java's UtilAll.crc32 masks the sign bit off.
            let actual = (crc32fast::hash(&request.body) & 0x7FFF_FFFF) as i32;
            if actual != crc {
                log::warn!(
                    "REGISTER_BROKER from {} (connection {conn_id}): crc32 {actual} does not match bodyCrc32 {crc}",
                    header.broker_addr
                );
                return Err(RequestError::CrcMismatch);
            }
        }
        let (topics, filter_servers) = if request.version >= V3_0_11 {
            if header.compressed == Some(true) {
                return Err(RequestError::Compressed);
            }
            if request.body.is_empty() {
                (empty_topics(), Some(Vec::new()))
            } else {
                let body: RegisterBrokerBody = decode_body("RegisterBrokerBody", &request.body)?;
                (
                    body.topic_config_serialize_wrapper,
                    Some(body.filter_server_list),
                )
            }
        } else if request.body.is_empty() {
            (empty_topics(), None)
        } else {
            let body: TopicConfigSerializeWrapper =
                decode_body("TopicConfigSerializeWrapper", &request.body)?;
            (body, None)
        };

        let result = write(&self.routes).register(
            BrokerRegistration {
                cluster_name: header.cluster_name,
                broker_addr: header.broker_addr,
                broker_name: header.broker_name,
                broker_id: header.broker_id,
                ha_server_addr: header.ha_server_addr,
                topics,
                filter_servers,
                conn_id,
            },
            Instant::now(),
        );
        let order_config = read(&self.kv).namespace(ORDER_TOPIC_CONFIG);

        let mut response = success(request);
        RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr,
            master_addr: result.master_addr,
        }
        .encode(&mut response.ext_fields);
        if let Some(table) = order_config {
            response.body = table.encode();
        }
        Ok(response)
    }

    fn unregister_broker(
        &self,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, RequestError> {
        let header: BrokerIdentityRequestHeader = decode_header(request)?;
        write(&self.routes).unregister(&header.broker_name, &header.broker_addr, header.broker_id);
        Ok(success(request))
    }

    fn query_data_version(
        &self,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, RequestError> {
        let header: BrokerIdentityRequestHeader = decode_header(request)?;
        if request.body.is_empty() {
            return Err(RequestError::MissingBody("DataVersion"));
        }
        let version: DataVersion = decode_body("DataVersion", &request.body)?;
        let (changed, recorded) =
            write(&self.routes).query_data_version(&header.broker_addr, &version, Instant::now());
        let mut response = success(request);
        QueryDataVersionResponseHeader { changed }.encode(&mut response.ext_fields);
        if let Some(recorded) = recorded {
            response.body = recorded.encode();
        }
        Ok(response)
    }

    fn route_by_topic(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: GetRouteInfoRequestHeader = decode_header(request)?;
        let route = read(&self.routes).route(&header.topic);
        let Some(mut route) = route else {
            return Ok(error_response(
                request,
                resp::TOPIC_NOT_EXIST,
                format!(
                    "No topic route info in name server for the topic: {}{APPLY_TOPIC_HINT}",
                    header.topic
                ),
            ));
        };
        if read(&self.config).order_message_enable {
            route.order_topic_conf = read(&self.kv)
                .get(ORDER_TOPIC_CONFIG, &header.topic)
                .map(str::to_owned);
        }
        let standard = request.version >= V4_9_4 || header.accept_standard_json_only == Some(true);
        let body = if standard {
            route.encode_standard()
        } else {
            route.encode_fastjson()
        };
        Ok(success_with_body(request, body))
    }

    fn wipe_write_perm(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: BrokerNameRequestHeader = decode_header(request)?;
        let count = write(&self.routes).wipe_write_perm(&header.broker_name);
        log::info!(
            "write permission of broker {} wiped from {count} topics",
            header.broker_name
        );
        let mut response = success(request);
        WipeWritePermResponseHeader {
            wipe_topic_count: saturating_i32(count),
        }
        .encode(&mut response.ext_fields);
        Ok(response)
    }

    fn add_write_perm(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: BrokerNameRequestHeader = decode_header(request)?;
        let count = write(&self.routes).add_write_perm(&header.broker_name);
        log::info!(
            "write permission of broker {} added to {count} topics",
            header.broker_name
        );
        let mut response = success(request);
        AddWritePermResponseHeader {
            add_topic_count: saturating_i32(count),
        }
        .encode(&mut response.ext_fields);
        Ok(response)
    }

    fn delete_topic(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let header: TopicRequestHeader = decode_header(request)?;
        let cluster = header.cluster_name.as_deref().filter(|c| !c.is_empty());
        write(&self.routes).delete_topic(&header.topic, cluster);
        Ok(success(request))
    }

    fn update_config(&self, request: &RemotingCommand) -> Result<RemotingCommand, RequestError> {
        let text = std::str::from_utf8(&request.body).map_err(|e| RequestError::Body {
            what: "properties",
            why: format!("not UTF-8 (bad byte at {})", e.valid_up_to()),
        })?;
        let mut config = write(&self.config);
        let next = config.updated(text)?;
        if *config != next {
            log::info!("NameServer config updated: {next:?}");
        }
        *config = next;
        Ok(success(request))
    }
}

/// The topics of a registration without a body: none, at version 0/0 (Java's
/// choice, so the next real registration always counts as a change).
fn empty_topics() -> TopicConfigSerializeWrapper {
    TopicConfigSerializeWrapper {
        data_version: DataVersion {
            counter: 0,
            timestamp: 0,
        },
        topic_config_table: Default::default(),
    }
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl RequestHandler for NamesrvHandler {
    fn handle(
        self: Arc<Self>,
        conn: Arc<Connection>,
        request: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        if let Some(acl) = &self.acl {
            if super::WRITE_CODES.contains(&request.code) {
                if let Err(reason) = acl.check_admin(conn.peer.ip(), &request) {
                    return Box::pin(std::future::ready(acl.refuse(conn.peer, &request, &reason)));
                }
            }
        }
        let response = self.process(conn.id, &request);
        Box::pin(std::future::ready(Some(response)))
    }

    fn on_disconnect(&self, conn: &Arc<Connection>) {
        let removed = write(&self.routes).remove_connection(conn.id);
        if removed > 0 {
            log::info!(
                "connection {} from {} closed; removed the {removed} broker address(es) it registered",
                conn.id,
                conn.peer
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_protocol::body::{TopicConfig, TopicRouteData};

    fn register_request(version: i32, name: &str, id: i64, addr: &str) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(req::REGISTER_BROKER);
        cmd.version = version;
        RegisterBrokerRequestHeader {
            broker_name: name.into(),
            broker_addr: addr.into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: format!("{addr}-ha"),
            broker_id: id,
            compressed: Some(false),
            body_crc32: Some(0),
        }
        .encode(&mut cmd.ext_fields);
        let wrapper = TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter: 1,
                timestamp: 1,
            },
            topic_config_table: [(
                "T".to_owned(),
                TopicConfig {
                    topic_name: "T".into(),
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    ..TopicConfig::default()
                },
            )]
            .into(),
        };
        cmd.body = if version >= V3_0_11 {
            RegisterBrokerBody {
                filter_server_list: Vec::new(),
                topic_config_serialize_wrapper: wrapper,
            }
            .encode()
        } else {
            wrapper.encode()
        };
        cmd
    }

    fn route_request(topic: &str, version: i32) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(req::GET_ROUTEINFO_BY_TOPIC);
        cmd.version = version;
        cmd.put("topic", topic);
        cmd
    }

    #[test]
    fn old_brokers_register_with_a_bare_wrapper() {
        let ns = NamesrvHandler::new(NamesrvConfig::default());
        let response = ns.process(
            1,
            &register_request(V3_0_11 - 1, "old", 0, "10.0.0.1:10911"),
        );
        assert_eq!(response.code, resp::SUCCESS, "{:?}", response.remark);
        // From V3_0_11 on the body is a RegisterBrokerBody.
        let response = ns.process(2, &register_request(V3_0_11, "new", 0, "10.0.0.2:10911"));
        assert_eq!(response.code, resp::SUCCESS);
        let route = ns.process(3, &route_request("T", 407));
        let route = TopicRouteData::decode(&route.body).expect("route body");
        assert_eq!(route.queue_datas.len(), 2);
    }

    #[test]
    fn route_form_follows_the_version_and_the_flag() {
        let ns = NamesrvHandler::new(NamesrvConfig::default());
        ns.process(1, &register_request(407, "broker-a", 0, "10.0.0.1:10911"));
        let text =
            |cmd: &RemotingCommand| String::from_utf8(ns.process(2, cmd).body).expect("utf-8");
        assert!(text(&route_request("T", V4_9_4)).contains(r#""brokerAddrs":{"0":"#));
        assert!(text(&route_request("T", V4_9_4 - 2)).contains(r#""brokerAddrs":{0:"#));
        let mut flagged = route_request("T", 0);
        flagged.put("acceptStandardJsonOnly", "true");
        assert!(text(&flagged).contains(r#""brokerAddrs":{"0":"#));
    }

    #[test]
    fn unknown_codes_and_missing_fields_are_answered() {
        let ns = NamesrvHandler::new(NamesrvConfig::default());
        let response = ns.process(1, &RemotingCommand::request(4242));
        assert_eq!(response.code, resp::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(
            response.remark.as_deref(),
            Some(" request type 4242 not supported")
        );
        let response = ns.process(1, &RemotingCommand::request(req::GET_ROUTEINFO_BY_TOPIC));
        assert_eq!(response.code, resp::SYSTEM_ERROR);
        assert!(response.remark.expect("remark").contains("<topic>"));
        let mut put = RemotingCommand::request(req::PUT_KV_CONFIG);
        put.put("namespace", "NS").put("key", "k");
        let response = ns.process(1, &put);
        assert_eq!(response.code, resp::SYSTEM_ERROR);
        assert!(response.remark.expect("remark").contains("<value>"));
    }

    #[test]
    fn crc_is_checked_when_given() {
        let ns = NamesrvHandler::new(NamesrvConfig::default());
        let mut cmd = register_request(407, "broker-a", 0, "10.0.0.1:10911");
        let good = (crc32fast::hash(&cmd.body) & 0x7FFF_FFFF) as i32;
        cmd.put("bodyCrc32", good.wrapping_add(1));
        let response = ns.process(1, &cmd);
        assert_eq!(response.code, resp::SYSTEM_ERROR);
        assert_eq!(response.remark.as_deref(), Some("crc32 not match"));
        cmd.put("bodyCrc32", good);
        assert_eq!(ns.process(1, &cmd).code, resp::SUCCESS);
    }
}
