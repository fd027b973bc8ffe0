//! The broker's requests as Java clients send them, and readers of their
//! answers: sends, pulls, topics, offsets, heartbeats.

use mq::connection::RemotingClient;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{LanguageCode, RemotingCommand, SerializeType};
use mq_protocol::message::{decode_offset_msg_id, decode_records, StoredMessage};
use mq_protocol::properties;
pub use mq_protocol::time::now_ms;

use super::broker::BROKER_NAME;
use super::remoting::{call, call_ok, eventually, request, TIMEOUT};

/// A properties string from pairs (no trailing separator, as Java 4.9 writes it).
pub fn props(pairs: &[(&str, &str)]) -> String {
    properties::encode(pairs.iter().copied())
}

/// SEND_MESSAGE_V2 (310) as a Java 4.9 producer sends it.
pub fn send_v2(
    ser: SerializeType,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
) -> RemotingCommand {
    let born = now_ms().to_string();
    let queue = queue_id.to_string();
    let mut cmd = request(
        req::SEND_MESSAGE_V2,
        ser,
        &[
            ("a", "TestProducerGroup"),
            ("b", topic),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", &queue),
            ("f", "0"),
            ("g", &born),
            ("h", "0"),
            ("i", properties),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", BROKER_NAME),
        ],
    );
    cmd.body = body.to_vec();
    cmd
}

/// What a successful send answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub msg_id: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// CommitLog offset, from the offset message id.
    pub phys: i64,
}

/// Reads a send response, which must be SUCCESS.
pub fn sent(response: &RemotingCommand) -> Sent {
    assert_eq!(response.code, resp::SUCCESS, "send: {:?}", response.remark);
    let msg_id = response.get("msgId").expect("msgId").to_owned();
    let first = msg_id.split(',').next().expect("one id at least");
    let (_, phys) = decode_offset_msg_id(first).expect("an offset message id");
    Sent {
        queue_id: response
            .get("queueId")
            .expect("queueId")
            .parse()
            .expect("a number"),
        queue_offset: response
            .get("queueOffset")
            .expect("queueOffset")
            .parse()
            .expect("a number"),
        msg_id,
        phys,
    }
}

/// Sends one message with SEND_MESSAGE_V2 in JSON and returns the result.
pub async fn send(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
) -> Sent {
    let response = call(
        client,
        send_v2(SerializeType::Json, topic, queue_id, body, properties),
    )
    .await;
    sent(&response)
}

/// Creates (or updates) `topic` with `queues` read and write queues, perm RW.
pub async fn create_topic(client: &RemotingClient, topic: &str, queues: i32) {
    let n = queues.to_string();
    call_ok(
        client,
        request(
            req::UPDATE_AND_CREATE_TOPIC,
            SerializeType::Json,
            &[
                ("topic", topic),
                ("defaultTopic", "TBW102"),
                ("readQueueNums", &n),
                ("writeQueueNums", &n),
                ("perm", "6"),
                ("topicFilterType", "SINGLE_TAG"),
                ("topicSysFlag", "0"),
                ("order", "false"),
            ],
        ),
    )
    .await;
}

/// How a test pulls.
#[derive(Debug, Clone)]
pub struct Pull<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub offset: i64,
    pub max: i32,
    pub sys_flag: i32,
    pub commit_offset: i64,
    pub suspend_ms: i64,
    pub subscription: Option<&'a str>,
}

impl<'a> Pull<'a> {
    /// A plain pull of up to 32 messages, no flags.
    pub fn new(group: &'a str, topic: &'a str, queue_id: i32, offset: i64) -> Self {
        Pull {
            group,
            topic,
            queue_id,
            offset,
            max: 32,
            sys_flag: 0,
            commit_offset: 0,
            suspend_ms: 0,
            subscription: None,
        }
    }

    /// The PULL_MESSAGE request, fields as the Java consumer names them.
    pub fn command(&self, ser: SerializeType) -> RemotingCommand {
        let (queue, offset, max, flag, commit, suspend) = (
            self.queue_id.to_string(),
            self.offset.to_string(),
            self.max.to_string(),
            self.sys_flag.to_string(),
            self.commit_offset.to_string(),
            self.suspend_ms.to_string(),
        );
        let mut cmd = request(
            req::PULL_MESSAGE,
            ser,
            &[
                ("consumerGroup", self.group),
                ("topic", self.topic),
                ("queueId", &queue),
                ("queueOffset", &offset),
                ("maxMsgNums", &max),
                ("sysFlag", &flag),
                ("commitOffset", &commit),
                ("suspendTimeoutMillis", &suspend),
                ("subVersion", "0"),
                ("expressionType", "TAG"),
            ],
        );
        if let Some(sub) = self.subscription {
            cmd.put("subscription", sub);
        }
        cmd
    }
}

/// Decodes a PULL/QUERY body (records back to back, CRC checked).
pub fn records(body: &[u8]) -> Vec<StoredMessage<'_>> {
    decode_records(body, true).expect("well-formed stored messages")
}

/// The bodies of a PULL/QUERY body's records, as text.
pub fn bodies(body: &[u8]) -> Vec<String> {
    records(body)
        .iter()
        .map(|m| String::from_utf8_lossy(m.body).into_owned())
        .collect()
}

/// A header field parsed as i64.
pub fn field_i64(cmd: &RemotingCommand, key: &str) -> i64 {
    cmd.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", cmd.ext_fields))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {:?}", cmd.get(key)))
}

/// GET_MAX_OFFSET of a queue.
pub async fn max_offset(client: &RemotingClient, topic: &str, queue_id: i32) -> i64 {
    let q = queue_id.to_string();
    let response = call_ok(
        client,
        request(
            req::GET_MAX_OFFSET,
            SerializeType::Json,
            &[("topic", topic), ("queueId", &q)],
        ),
    )
    .await;
    field_i64(&response, "offset")
}

/// Waits until the queue's max offset reaches `at_least`.
pub async fn wait_max_offset(client: &RemotingClient, topic: &str, queue_id: i32, at_least: i64) {
    eventually(
        &format!("{topic}:{queue_id} to reach offset {at_least}"),
        TIMEOUT,
        || async move { (max_offset(client, topic, queue_id).await >= at_least).then_some(()) },
    )
    .await
}

/// QUERY_CONSUMER_OFFSET: the response code and offset (if any).
pub async fn query_offset(
    client: &RemotingClient,
    ser: SerializeType,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> (i32, Option<i64>) {
    let q = queue_id.to_string();
    let response = call(
        client,
        request(
            req::QUERY_CONSUMER_OFFSET,
            ser,
            &[("consumerGroup", group), ("topic", topic), ("queueId", &q)],
        ),
    )
    .await;
    (
        response.code,
        response.get("offset").map(|o| o.parse().expect("a number")),
    )
}

/// A Java-style HeartbeatData body for one consumer group subscribed to
/// `topic` with a TAG expression, and one producer group.
pub fn consumer_heartbeat(client_id: &str, group: &str, topic: &str, expression: &str) -> Vec<u8> {
    let tags: Vec<&str> = if expression == "*" {
        Vec::new()
    } else {
        expression.split("||").map(str::trim).collect()
    };
    let codes: Vec<String> = tags
        .iter()
        .map(|t| properties::java_string_hash(t).to_string())
        .collect();
    let tags_json: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"{{"clientID":"{client_id}","consumerDataSet":[{{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"{group}","messageModel":"CLUSTERING","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[{}],"expressionType":"TAG","subString":"{expression}","subVersion":{},"tagsSet":[{}],"topic":"{topic}"}}],"unitMode":false}}],"producerDataSet":[{{"groupName":"CLIENT_INNER_PRODUCER"}}]}}"#,
        codes.join(","),
        now_ms(),
        tags_json.join(","),
    )
    .into_bytes()
}

/// A HEART_BEAT request with `body`, from a client of `language`.
pub fn heartbeat(ser: SerializeType, language: LanguageCode, body: Vec<u8>) -> RemotingCommand {
    let mut cmd = request(req::HEART_BEAT, ser, &[]);
    cmd.language = language;
    cmd.body = body;
    cmd
}

/// GET_CONSUMER_LIST_BY_GROUP's ids, or `None` when the group has no consumer.
pub async fn consumer_ids(client: &RemotingClient, group: &str) -> Option<Vec<String>> {
    let response = call(
        client,
        request(
            req::GET_CONSUMER_LIST_BY_GROUP,
            SerializeType::Json,
            &[("consumerGroup", group)],
        ),
    )
    .await;
    if response.code != resp::SUCCESS {
        return None;
    }
    let mut ids = mq_protocol::body::GetConsumerListByGroupResponseBody::decode(&response.body)
        .expect("consumer list body")
        .consumer_id_list;
    ids.sort();
    Some(ids)
}
