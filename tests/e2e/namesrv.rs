//! End-to-end tests of the NameServer: a real server on 127.0.0.1:0 in this
//! process, driven over TCP with the client's `RemotingClient` and, for the
//! misbehaving peers, with raw frames. Every request code is exercised in both
//! header serializations, and each response must come back in the request's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::io::AsyncWriteExt;

use mq::connection::RemotingClient;
use mq_daemon::namesrv::{self, NamesrvConfig};
use mq_daemon::shutdown::{Shutdown, ShutdownTrigger};
use mq_protocol::body::{
    ClusterInfo, DataVersion, KvTable, RegisterBrokerBody, TopicConfig,
    TopicConfigSerializeWrapper, TopicList, TopicRouteData,
};
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{RemotingCommand, SerializeType, DEFAULT_MAX_FRAME};
use mq_protocol::headers::{
    BrokerIdentityRequestHeader, CommandHeader, GetKvConfigResponseHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
};

use crate::support::*;

const CLUSTER: &str = "DefaultCluster";
const MASTER_A: &str = "10.0.0.1:10911";
const SLAVE_A: &str = "10.0.0.2:10911";

/// A NameServer running in this process on its own executor; stopped on drop.
struct Server {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    /// Stopped after the trigger, when the fields drop.
    _threads: ServerThreads,
}

impl Server {
    fn start() -> Server {
        Server::start_with(NamesrvConfig::default())
    }

    fn start_with(config: NamesrvConfig) -> Server {
        let threads = ServerThreads::start();
        let (shutdown, trigger) = Shutdown::new();
        let addr = async_io::block_on(namesrv::start_with(
            threads.ex.clone(),
            "127.0.0.1:0".parse().expect("address"),
            shutdown,
            config,
        ))
        .expect("start the NameServer");
        Server {
            addr,
            trigger,
            _threads: threads,
        }
    }

    async fn client(&self) -> Arc<RemotingClient> {
        connect(&self.addr.to_string()).await
    }

    async fn raw(&self) -> TcpStream {
        raw(&self.addr.to_string()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

// ---------------------------------------------------------------------------
// Requests

/// `(name, perm, queues, topicSysFlag)`.
type Topic<'a> = (&'a str, i32, i32, i32);

fn topics(counter: i64, list: &[Topic]) -> TopicConfigSerializeWrapper {
    TopicConfigSerializeWrapper {
        data_version: DataVersion {
            counter,
            timestamp: 1_700_000_000_000,
        },
        topic_config_table: list
            .iter()
            .map(|&(name, perm, queues, sys_flag)| {
                (
                    name.to_owned(),
                    TopicConfig {
                        topic_name: name.to_owned(),
                        perm,
                        read_queue_nums: queues,
                        write_queue_nums: queues,
                        topic_sys_flag: sys_flag,
                        ..TopicConfig::default()
                    },
                )
            })
            .collect(),
    }
}

/// REGISTER_BROKER as a 4.9 broker sends it: RegisterBrokerBody with its CRC.
fn register(
    st: SerializeType,
    name: &str,
    id: i64,
    addr: &str,
    wrapper: TopicConfigSerializeWrapper,
) -> RemotingCommand {
    let mut cmd = request(req::REGISTER_BROKER, st, &[]);
    cmd.body = RegisterBrokerBody {
        filter_server_list: Vec::new(),
        topic_config_serialize_wrapper: wrapper,
    }
    .encode();
    RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: CLUSTER.into(),
        ha_server_addr: format!("{addr}-ha"),
        broker_id: id,
        compressed: Some(false),
        body_crc32: Some((crc32fast::hash(&cmd.body) & 0x7FFF_FFFF) as i32),
    }
    .encode(&mut cmd.ext_fields);
    cmd
}

fn identity(code: i32, st: SerializeType, name: &str, id: i64, addr: &str) -> RemotingCommand {
    let mut cmd = request(code, st, &[]);
    BrokerIdentityRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: CLUSTER.into(),
        broker_id: id,
    }
    .encode(&mut cmd.ext_fields);
    cmd
}

fn route_request(st: SerializeType, topic: &str, version: i32) -> RemotingCommand {
    let mut cmd = request(req::GET_ROUTEINFO_BY_TOPIC, st, &[("topic", topic)]);
    cmd.version = version;
    cmd
}

fn topic_set(list: &TopicList) -> Vec<&str> {
    list.topic_list.iter().map(String::as_str).collect()
}

async fn topic_list(client: &RemotingClient, cmd: RemotingCommand) -> TopicList {
    TopicList::decode(&call_ok(client, cmd).await.body).expect("TopicList body")
}

async fn cluster_info(client: &RemotingClient, st: SerializeType) -> ClusterInfo {
    ClusterInfo::decode(
        &call_ok(client, request(req::GET_BROKER_CLUSTER_INFO, st, &[]))
            .await
            .body,
    )
    .expect("ClusterInfo body")
}

/// Sends a route request on a raw stream and checks it is answered: the
/// connection is still usable.
async fn still_usable(stream: &mut TcpStream, st: SerializeType) {
    let mut probe = route_request(st, "Probe", 407);
    probe.opaque = 1000;
    write_cmd(stream, &probe).await;
    let response = next_frame(stream).await;
    assert_eq!(response.opaque, 1000);
    assert_eq!(response.code, resp::TOPIC_NOT_EXIST);
    assert_eq!(response.serialize_type, st);
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn registers_brokers_and_serves_routes() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let client = server.client().await;
            let a = topics(1, &[("T", 6, 4, 0), ("TBW102", 7, 8, 0)]);
            let response = call_ok(&client, register(st, "broker-a", 0, MASTER_A, a.clone())).await;
            let header =
                RegisterBrokerResponseHeader::decode(&response.ext_fields).expect("header");
            assert_eq!(
                header,
                RegisterBrokerResponseHeader::default(),
                "a master has no master"
            );
            assert!(response.body.is_empty(), "no ORDER_TOPIC_CONFIG yet");

            let response = call_ok(&client, register(st, "broker-a", 1, SLAVE_A, a)).await;
            let header =
                RegisterBrokerResponseHeader::decode(&response.ext_fields).expect("header");
            assert_eq!(header.master_addr.as_deref(), Some(MASTER_A));
            assert_eq!(header.ha_server_addr, Some(format!("{MASTER_A}-ha")));

            // Standard JSON for 4.9.4+ clients, fastjson's bare keys before.
            let standard = call_ok(&client, route_request(st, "T", 407)).await;
            let text = String::from_utf8(standard.body.clone()).expect("UTF-8");
            assert!(
                text.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#),
                "{text}"
            );
            let route = TopicRouteData::decode(&standard.body).expect("route");
            assert_eq!(route.queue_datas.len(), 1);
            assert_eq!(route.queue_datas[0].broker_name, "broker-a");
            assert_eq!(
                (
                    route.queue_datas[0].write_queue_nums,
                    route.queue_datas[0].perm
                ),
                (4, 6)
            );
            assert_eq!(route.broker_datas[0].cluster, CLUSTER);
            assert_eq!(route.order_topic_conf, None);

            let old = call_ok(&client, route_request(st, "T", 399)).await;
            let text = String::from_utf8(old.body.clone()).expect("UTF-8");
            assert!(
                text.contains(r#""brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#),
                "{text}"
            );
            assert_eq!(TopicRouteData::decode(&old.body).expect("route"), route);
            let mut flagged = route_request(st, "T", 399);
            flagged.put("acceptStandardJsonOnly", "true");
            let text = String::from_utf8(call_ok(&client, flagged).await.body).expect("UTF-8");
            assert!(text.contains(r#"{"0":"#), "{text}");

            let missing = call(&client, route_request(st, "Nope", 407)).await;
            assert_eq!(missing.code, resp::TOPIC_NOT_EXIST);
            let remark = missing.remark.expect("remark");
            assert!(
                remark.starts_with("No topic route info in name server for the topic: Nope"),
                "{remark}"
            );
            assert!(missing.body.is_empty());

            let info = call_ok(&client, request(req::GET_BROKER_CLUSTER_INFO, st, &[])).await;
            let text = String::from_utf8(info.body.clone()).expect("UTF-8");
            assert!(
                text.contains(r#"{0:"10.0.0.1:10911""#),
                "cluster info keeps bare keys: {text}"
            );
            let info = ClusterInfo::decode(&info.body).expect("ClusterInfo");
            assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);
            assert!(info.cluster_addr_table[CLUSTER].contains("broker-a"));

            // broker-b carries the unit-flagged topics.
            let b = topics(
                1,
                &[("Unit", 6, 2, 1), ("UnitSub", 6, 2, 2), ("Both", 6, 2, 3)],
            );
            call_ok(&client, register(st, "broker-b", 0, "10.0.0.3:10911", b)).await;

            let all = topic_list(
                &client,
                request(req::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, st, &[]),
            )
            .await;
            assert_eq!(topic_set(&all), ["Both", "T", "TBW102", "Unit", "UnitSub"]);
            let by_cluster = request(req::GET_TOPICS_BY_CLUSTER, st, &[("cluster", CLUSTER)]);
            assert_eq!(
                topic_set(&topic_list(&client, by_cluster).await),
                topic_set(&all)
            );
            let unknown = request(req::GET_TOPICS_BY_CLUSTER, st, &[("cluster", "Nope")]);
            assert!(topic_list(&client, unknown).await.topic_list.is_empty());
            let system = topic_list(
                &client,
                request(req::GET_SYSTEM_TOPIC_LIST_FROM_NS, st, &[]),
            )
            .await;
            assert_eq!(
                topic_set(&system),
                ["DefaultCluster", "broker-a", "broker-b"]
            );
            assert_eq!(system.broker_addr.as_deref(), Some(MASTER_A));
            let unit = topic_list(&client, request(req::GET_UNIT_TOPIC_LIST, st, &[])).await;
            assert_eq!(topic_set(&unit), ["Both", "Unit"]);
            let sub = topic_list(&client, request(req::GET_HAS_UNIT_SUB_TOPIC_LIST, st, &[])).await;
            assert_eq!(topic_set(&sub), ["Both", "UnitSub"]);
            let sub_ununit = topic_list(
                &client,
                request(req::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, st, &[]),
            )
            .await;
            assert_eq!(topic_set(&sub_ununit), ["UnitSub"]);

            // UNREGISTER_BROKER: the slave leaves the route, broker-b takes
            // its topics with it.
            call_ok(
                &client,
                identity(req::UNREGISTER_BROKER, st, "broker-a", 1, SLAVE_A),
            )
            .await;
            call_ok(
                &client,
                identity(req::UNREGISTER_BROKER, st, "broker-b", 0, "10.0.0.3:10911"),
            )
            .await;
            let info = cluster_info(&client, st).await;
            assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 1);
            assert!(!info.broker_addr_table.contains_key("broker-b"));
            let all = topic_list(
                &client,
                request(req::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, st, &[]),
            )
            .await;
            assert_eq!(topic_set(&all), ["T", "TBW102"]);
        });
    }
}

#[test]
fn kv_config_namesrv_config_and_order_topic_conf() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let client = server.client().await;
            let put = request(
                req::PUT_KV_CONFIG,
                st,
                &[
                    ("namespace", "ORDER_TOPIC_CONFIG"),
                    ("key", "T"),
                    ("value", "broker-a:4"),
                ],
            );
            call_ok(&client, put).await;
            let get = |key: &str| {
                request(
                    req::GET_KV_CONFIG,
                    st,
                    &[("namespace", "ORDER_TOPIC_CONFIG"), ("key", key)],
                )
            };
            let response = call_ok(&client, get("T")).await;
            let header = GetKvConfigResponseHeader::decode(&response.ext_fields).expect("header");
            assert_eq!(header.value.as_deref(), Some("broker-a:4"));
            let missing = call(&client, get("Nope")).await;
            assert_eq!(missing.code, resp::QUERY_NOT_FOUND);
            assert_eq!(
                missing.remark.as_deref(),
                Some("No config item, Namespace: ORDER_TOPIC_CONFIG Key: Nope")
            );

            let list = call_ok(
                &client,
                request(
                    req::GET_KVLIST_BY_NAMESPACE,
                    st,
                    &[("namespace", "ORDER_TOPIC_CONFIG")],
                ),
            )
            .await;
            let table = KvTable::decode(&list.body).expect("KvTable");
            assert_eq!(table.table.get("T").map(String::as_str), Some("broker-a:4"));
            let none = call(
                &client,
                request(req::GET_KVLIST_BY_NAMESPACE, st, &[("namespace", "NS")]),
            )
            .await;
            assert_eq!(none.code, resp::QUERY_NOT_FOUND);
            assert_eq!(
                none.remark.as_deref(),
                Some("No config item, Namespace: NS")
            );

            // Registering brokers get the ORDER_TOPIC_CONFIG table.
            let response = call_ok(
                &client,
                register(st, "broker-a", 0, MASTER_A, topics(1, &[("T", 6, 4, 0)])),
            )
            .await;
            assert_eq!(KvTable::decode(&response.body).expect("KvTable"), table);

            // orderTopicConf only once orderMessageEnable is on.
            let route = call_ok(&client, route_request(st, "T", 407)).await;
            assert_eq!(
                TopicRouteData::decode(&route.body)
                    .expect("route")
                    .order_topic_conf,
                None
            );
            let config = call_ok(&client, request(req::GET_NAMESRV_CONFIG, st, &[])).await;
            let text = String::from_utf8(config.body).expect("UTF-8");
            assert!(text.contains("orderMessageEnable=false\n"), "{text}");
            let mut update = request(req::UPDATE_NAMESRV_CONFIG, st, &[]);
            update.body = b"orderMessageEnable=true\n".to_vec();
            call_ok(&client, update).await;
            let text = String::from_utf8(
                call_ok(&client, request(req::GET_NAMESRV_CONFIG, st, &[]))
                    .await
                    .body,
            )
            .expect("UTF-8");
            assert!(text.contains("orderMessageEnable=true\n"), "{text}");
            let route = call_ok(&client, route_request(st, "T", 407)).await;
            let route = TopicRouteData::decode(&route.body).expect("route");
            assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));

            let mut unknown = request(req::UPDATE_NAMESRV_CONFIG, st, &[]);
            unknown.body = b"listenPort=9877\n".to_vec();
            let refused = call(&client, unknown).await;
            assert_eq!(refused.code, resp::SYSTEM_ERROR);
            assert!(refused.remark.expect("remark").contains("listenPort"));
            let mut path = request(req::UPDATE_NAMESRV_CONFIG, st, &[]);
            path.body = b"kvConfigPath=/tmp/kv.json\n".to_vec();
            assert_eq!(call(&client, path).await.code, resp::NO_PERMISSION);

            let delete = request(
                req::DELETE_KV_CONFIG,
                st,
                &[("namespace", "ORDER_TOPIC_CONFIG"), ("key", "T")],
            );
            call_ok(&client, delete).await;
            assert_eq!(call(&client, get("T")).await.code, resp::QUERY_NOT_FOUND);
            let route = call_ok(&client, route_request(st, "T", 407)).await;
            assert_eq!(
                TopicRouteData::decode(&route.body)
                    .expect("route")
                    .order_topic_conf,
                None
            );
        });
    }
}

#[test]
fn data_version_write_perm_and_topic_deletion() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let client = server.client().await;
            let wrapper = topics(3, &[("T", 6, 4, 0), ("TBW102", 7, 8, 0)]);
            call_ok(
                &client,
                register(st, "broker-a", 0, MASTER_A, wrapper.clone()),
            )
            .await;

            let query = |addr: &str, version: &DataVersion| {
                let mut cmd = identity(req::QUERY_DATA_VERSION, st, "broker-a", 0, addr);
                cmd.body = version.encode();
                cmd
            };
            let same = call_ok(&client, query(MASTER_A, &wrapper.data_version)).await;
            assert!(
                !QueryDataVersionResponseHeader::decode(&same.ext_fields)
                    .expect("header")
                    .changed
            );
            assert_eq!(
                DataVersion::decode(&same.body).expect("DataVersion"),
                wrapper.data_version
            );
            let newer = DataVersion {
                counter: 4,
                ..wrapper.data_version
            };
            let changed = call_ok(&client, query(MASTER_A, &newer)).await;
            assert!(
                QueryDataVersionResponseHeader::decode(&changed.ext_fields)
                    .expect("header")
                    .changed
            );
            assert_eq!(
                DataVersion::decode(&changed.body)
                    .expect("DataVersion")
                    .counter,
                3
            );
            let unknown = call_ok(&client, query("10.9.9.9:1", &newer)).await;
            assert!(
                QueryDataVersionResponseHeader::decode(&unknown.ext_fields)
                    .expect("header")
                    .changed
            );
            assert!(unknown.body.is_empty());

            let wipe = call_ok(
                &client,
                request(
                    req::WIPE_WRITE_PERM_OF_BROKER,
                    st,
                    &[("brokerName", "broker-a")],
                ),
            )
            .await;
            assert_eq!(wipe.get("wipeTopicCount"), Some("2"));
            let route =
                TopicRouteData::decode(&call_ok(&client, route_request(st, "T", 407)).await.body)
                    .expect("route");
            assert_eq!(route.queue_datas[0].perm, 4);
            let add = call_ok(
                &client,
                request(
                    req::ADD_WRITE_PERM_OF_BROKER,
                    st,
                    &[("brokerName", "broker-a")],
                ),
            )
            .await;
            assert_eq!(add.get("addTopicCount"), Some("2"));
            let route =
                TopicRouteData::decode(&call_ok(&client, route_request(st, "T", 407)).await.body)
                    .expect("route");
            assert_eq!(route.queue_datas[0].perm, 6);
            let none = call_ok(
                &client,
                request(
                    req::WIPE_WRITE_PERM_OF_BROKER,
                    st,
                    &[("brokerName", "nope")],
                ),
            )
            .await;
            assert_eq!(none.get("wipeTopicCount"), Some("0"));

            // DELETE_TOPIC_IN_NAMESRV, limited to a cluster or everywhere.
            let other_cluster = request(
                req::DELETE_TOPIC_IN_NAMESRV,
                st,
                &[("topic", "T"), ("clusterName", "Other")],
            );
            call_ok(&client, other_cluster).await;
            assert_eq!(
                call(&client, route_request(st, "T", 407)).await.code,
                resp::SUCCESS
            );
            let this_cluster = request(
                req::DELETE_TOPIC_IN_NAMESRV,
                st,
                &[("topic", "T"), ("clusterName", CLUSTER)],
            );
            call_ok(&client, this_cluster).await;
            assert_eq!(
                call(&client, route_request(st, "T", 407)).await.code,
                resp::TOPIC_NOT_EXIST
            );
            call_ok(
                &client,
                request(req::DELETE_TOPIC_IN_NAMESRV, st, &[("topic", "TBW102")]),
            )
            .await;
            assert_eq!(
                call(&client, route_request(st, "TBW102", 407)).await.code,
                resp::TOPIC_NOT_EXIST
            );
            // The broker itself stays registered.
            assert!(cluster_info(&client, st)
                .await
                .broker_addr_table
                .contains_key("broker-a"));
        });
    }
}

#[test]
fn bad_requests_get_error_responses_and_the_connection_stays() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let client = server.client().await;
            let good = || register(st, "broker-a", 0, MASTER_A, topics(1, &[("T", 6, 4, 0)]));

            let mut missing = good();
            missing.ext_fields.remove("brokerName");
            let response = call(&client, missing).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response.remark.expect("remark").contains("brokerName"));
            let response = call(&client, request(req::GET_ROUTEINFO_BY_TOPIC, st, &[])).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response.remark.expect("remark").contains("topic"));
            let bad_number = request(
                req::UNREGISTER_BROKER,
                st,
                &[
                    ("brokerName", "a"),
                    ("brokerAddr", "b"),
                    ("clusterName", "c"),
                    ("brokerId", "zero"),
                ],
            );
            let response = call(&client, bad_number).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response.remark.expect("remark").contains("brokerId"));

            let response = call(&client, request(9999, st, &[])).await;
            assert_eq!(response.code, resp::REQUEST_CODE_NOT_SUPPORTED);
            assert_eq!(
                response.remark.as_deref(),
                Some(" request type 9999 not supported")
            );

            let mut bad_crc = good();
            let crc: i32 = bad_crc
                .get("bodyCrc32")
                .expect("crc")
                .parse()
                .expect("number");
            bad_crc.put("bodyCrc32", crc ^ 1);
            let response = call(&client, bad_crc).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert_eq!(response.remark.as_deref(), Some("crc32 not match"));

            let mut garbage = good();
            garbage.body = b"\x00\xffnot json".to_vec();
            garbage.put("bodyCrc32", 0);
            let response = call(&client, garbage).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response
                .remark
                .expect("remark")
                .contains("RegisterBrokerBody"));
            let mut wrong_shape = good();
            wrong_shape.body = br#"{"topicConfigSerializeWrapper":[1,2]}"#.to_vec();
            wrong_shape.put("bodyCrc32", 0);
            let response = call(&client, wrong_shape).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response
                .remark
                .expect("remark")
                .contains("RegisterBrokerBody"));

            let mut compressed = good();
            compressed.put("compressed", "true");
            let response = call(&client, compressed).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response.remark.expect("remark").contains("compressed"));

            let mut bad_version = identity(req::QUERY_DATA_VERSION, st, "broker-a", 0, MASTER_A);
            bad_version.body = b"{counter".to_vec();
            let response = call(&client, bad_version).await;
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            assert!(response.remark.expect("remark").contains("DataVersion"));
            let no_body = identity(req::QUERY_DATA_VERSION, st, "broker-a", 0, MASTER_A);
            assert_eq!(call(&client, no_body).await.code, resp::SYSTEM_ERROR);

            // Nothing above registered anything, and the connection still works.
            assert!(cluster_info(&client, st).await.broker_addr_table.is_empty());
            call_ok(&client, good()).await;
            assert!(!client.is_closed());
        });
    }
}

#[test]
fn an_oversized_frame_is_answered_and_skipped() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let mut stream = server.raw().await;
            let mut cmd = route_request(st, "T", 407);
            cmd.opaque = 77;
            let small = cmd.encode().expect("encode");
            // Keep the valid header (word and header bytes), announce a frame
            // one megabyte over the limit, and stream the rest as zeros.
            let header = &small[4..];
            let length = DEFAULT_MAX_FRAME + (1 << 20);
            stream
                .write_all(&(length as u32).to_be_bytes())
                .await
                .expect("write length");
            stream.write_all(header).await.expect("write header");
            let chunk = vec![0u8; 64 * 1024];
            let mut remaining = length - header.len();
            while remaining > 0 {
                let n = remaining.min(chunk.len());
                stream.write_all(&chunk[..n]).await.expect("write body");
                remaining -= n;
            }
            let response = next_frame(&mut stream).await;
            assert_eq!(response.opaque, 77);
            assert_eq!(response.code, resp::SYSTEM_ERROR);
            let remark = response.remark.expect("remark");
            assert!(remark.contains(&DEFAULT_MAX_FRAME.to_string()), "{remark}");
            assert_eq!(response.serialize_type, st);
            still_usable(&mut stream, st).await;
        });
    }
}

#[test]
fn a_malformed_header_is_answered_and_the_connection_stays() {
    let server = Server::start();
    async_io::block_on(async {
        let mut stream = server.raw().await;
        // A JSON header cut off mid-object.
        let json = br#"{"code":105,"opaque":42,"flag":0,"extFields":{"topic":"#;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(4 + json.len() as u32).to_be_bytes());
        frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
        frame.extend_from_slice(json);
        stream.write_all(&frame).await.expect("write");
        let response = next_frame(&mut stream).await;
        assert_eq!((response.opaque, response.code), (42, resp::SYSTEM_ERROR));
        still_usable(&mut stream, SerializeType::Json).await;

        // A ROCKETMQ header whose remark length runs past the header.
        let mut binary = Vec::new();
        binary.extend_from_slice(&105i16.to_be_bytes());
        binary.push(0);
        binary.extend_from_slice(&407i16.to_be_bytes());
        binary.extend_from_slice(&43i32.to_be_bytes());
        binary.extend_from_slice(&0i32.to_be_bytes());
        binary.extend_from_slice(&1000i32.to_be_bytes());
        let mut frame = Vec::new();
        frame.extend_from_slice(&(4 + binary.len() as u32).to_be_bytes());
        frame.extend_from_slice(&((1u32 << 24) | binary.len() as u32).to_be_bytes());
        frame.extend_from_slice(&binary);
        stream.write_all(&frame).await.expect("write");
        let response = next_frame(&mut stream).await;
        assert_eq!((response.opaque, response.code), (43, resp::SYSTEM_ERROR));
        assert_eq!(response.serialize_type, SerializeType::RocketMq);
        still_usable(&mut stream, SerializeType::RocketMq).await;
    });
}

#[test]
fn a_header_length_past_the_frame_is_answered() {
    let server = Server::start();
    async_io::block_on(async {
        let mut stream = server.raw().await;
        let json = br#"{"code":105,"opaque":7,"flag":0}"#;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(4 + json.len() as u32).to_be_bytes());
        // Claims a 1000-byte header in a frame that has far fewer bytes.
        frame.extend_from_slice(&1000u32.to_be_bytes());
        frame.extend_from_slice(json);
        stream.write_all(&frame).await.expect("write");
        let response = next_frame(&mut stream).await;
        assert_eq!((response.opaque, response.code), (7, resp::SYSTEM_ERROR));
        assert!(response.remark.expect("remark").contains("1000"));
        still_usable(&mut stream, SerializeType::Json).await;
    });
}

#[test]
fn a_peer_leaving_mid_frame_does_not_disturb_others() {
    let server = Server::start();
    async_io::block_on(async {
        let client = server.client().await;
        call_ok(
            &client,
            register(
                SerializeType::Json,
                "broker-a",
                0,
                MASTER_A,
                topics(1, &[("T", 6, 4, 0)]),
            ),
        )
        .await;

        let mut quitter = server.raw().await;
        quitter
            .write_all(&100u32.to_be_bytes())
            .await
            .expect("write length");
        quitter.write_all(&[0u8; 10]).await.expect("write part");
        drop(quitter);

        // The established client and a new one are both served.
        for st in BOTH {
            call_ok(&client, route_request(st, "T", 407)).await;
        }
        let late = server.client().await;
        call_ok(&late, route_request(SerializeType::RocketMq, "T", 407)).await;
    });
}

#[test]
fn closing_the_registering_connection_removes_its_broker() {
    for st in BOTH {
        let server = Server::start();
        async_io::block_on(async {
            let observer = server.client().await;
            // One broker registers and leaves cleanly, one leaves mid-frame,
            // one registers one-way (as brokers do after creating a topic).
            let mut clean = server.raw().await;
            write_cmd(
                &mut clean,
                &register(
                    st,
                    "broker-a",
                    0,
                    MASTER_A,
                    topics(1, &[("A", 6, 4, 0), ("Shared", 6, 4, 0)]),
                ),
            )
            .await;
            assert_eq!(next_frame(&mut clean).await.code, resp::SUCCESS);
            let mut abrupt = server.raw().await;
            write_cmd(
                &mut abrupt,
                &register(
                    st,
                    "broker-b",
                    0,
                    "10.0.0.3:10911",
                    topics(1, &[("B", 6, 4, 0), ("Shared", 6, 4, 0)]),
                ),
            )
            .await;
            assert_eq!(next_frame(&mut abrupt).await.code, resp::SUCCESS);
            let mut oneway = register(
                st,
                "broker-c",
                0,
                "10.0.0.4:10911",
                topics(1, &[("C", 6, 4, 0)]),
            );
            oneway.set_oneway();
            let mut silent = server.raw().await;
            write_cmd(&mut silent, &oneway).await;
            eventually(
                "the one-way registration is visible",
                Duration::from_secs(10),
                || async {
                    (call(&observer, route_request(st, "C", 407)).await.code == resp::SUCCESS)
                        .then_some(())
                },
            )
            .await;

            let shared = TopicRouteData::decode(
                &call_ok(&observer, route_request(st, "Shared", 407))
                    .await
                    .body,
            )
            .expect("route");
            assert_eq!(shared.queue_datas.len(), 2);

            drop(clean);
            eventually("broker-a is gone", Duration::from_secs(10), || async {
                (call(&observer, route_request(st, "A", 407)).await.code == resp::TOPIC_NOT_EXIST)
                    .then_some(())
            })
            .await;
            let shared = TopicRouteData::decode(
                &call_ok(&observer, route_request(st, "Shared", 407))
                    .await
                    .body,
            )
            .expect("route");
            assert_eq!(shared.queue_datas.len(), 1);
            assert_eq!(shared.queue_datas[0].broker_name, "broker-b");

            abrupt
                .write_all(&200u32.to_be_bytes())
                .await
                .expect("write length");
            abrupt.write_all(&[1u8; 20]).await.expect("write part");
            drop(abrupt);
            eventually("broker-b is gone", Duration::from_secs(10), || async {
                (call(&observer, route_request(st, "Shared", 407)).await.code
                    == resp::TOPIC_NOT_EXIST)
                    .then_some(())
            })
            .await;
            let info = cluster_info(&observer, st).await;
            assert_eq!(
                info.broker_addr_table.keys().collect::<Vec<_>>(),
                ["broker-c"]
            );
            drop(silent);
        });
    }
}

#[test]
fn silent_brokers_expire() {
    let expiry = Duration::from_millis(300);
    let server = Server::start_with(NamesrvConfig {
        broker_expiry: expiry,
        scan_interval: Duration::from_millis(50),
        ..NamesrvConfig::default()
    });
    async_io::block_on(async {
        // The connection stays open: only the expiry can remove the broker.
        let broker = server.client().await;
        let observer = server.client().await;
        for st in BOTH {
            let registered = Instant::now();
            call_ok(
                &broker,
                register(st, "broker-a", 0, MASTER_A, topics(1, &[("T", 6, 4, 0)])),
            )
            .await;
            assert!(cluster_info(&observer, st)
                .await
                .broker_addr_table
                .contains_key("broker-a"));
            eventually("broker-a expires", Duration::from_secs(10), || async {
                (cluster_info(&observer, st)
                    .await
                    .broker_addr_table
                    .is_empty())
                .then_some(())
            })
            .await;
            assert!(
                registered.elapsed() >= expiry,
                "expired after {:?}",
                registered.elapsed()
            );
            assert_eq!(
                call(&observer, route_request(st, "T", 407)).await.code,
                resp::TOPIC_NOT_EXIST
            );
            assert!(
                !broker.is_closed(),
                "expiry drops the registration, not the connection"
            );
        }
    });
}
