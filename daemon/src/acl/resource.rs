//! What a request touches: the topics and groups it needs a permission on,
//! read from its header or body as 4.9.7's `PlainAccessValidator.parse`
//! reads them, and whether its code is for admin accounts only.
//!
//! mq departs from 4.9.7 only to close doors 4.9.7 leaves open: a batch
//! send (SEND_BATCH_MESSAGE) needs PUB on its topic like any other send
//! (4.9.7 checks only its signature), and the codes in [`MQ_ADMIN_CODES`]
//! (changing or reading the ACL itself, which 4.9.7 lets any account do,
//! resetting a group's offsets, deleting CommitLog files) need an admin.

use std::borrow::Cow;

use mq_protocol::body::HeartbeatData;
use mq_protocol::codes::request::*;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::topics::{retry_topic, RETRY_GROUP_TOPIC_PREFIX};

use super::permission::Perm;

/// The codes 4.9.7 keeps for admin accounts (`Permission.ADMIN_CODE`).
pub(crate) const ADMIN_CODES: [i32; 5] = [
    UPDATE_AND_CREATE_TOPIC,
    UPDATE_BROKER_CONFIG,
    DELETE_TOPIC_IN_BROKER,
    UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    DELETE_SUBSCRIPTIONGROUP,
];

/// The codes mq keeps for admin accounts too.
pub(crate) const MQ_ADMIN_CODES: [i32; 6] = [
    UPDATE_AND_CREATE_ACL_CONFIG,
    DELETE_ACL_CONFIG,
    UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
    GET_BROKER_CLUSTER_ACL_CONFIG,
    INVOKE_BROKER_TO_RESET_OFFSET,
    DELETE_EXPIRED_COMMITLOG,
];

/// The message-trace topic: sending to it needs no permission (4.9.7
/// skips the check so that tracing works for every account).
pub(crate) const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// Whether `code` needs an admin account.
pub(crate) fn needs_admin(code: i32) -> bool {
    ADMIN_CODES.contains(&code) || MQ_ADMIN_CODES.contains(&code)
}

/// Whether a resource name is a group (its retry topic) rather than a topic.
pub(crate) fn is_group(resource: &str) -> bool {
    resource.starts_with(RETRY_GROUP_TOPIC_PREFIX)
}

/// The permissions a request needs, by resource (topics by name, groups by
/// retry topic). A resource named twice keeps its last permission, as in
/// 4.9.7's map. Topics are borrowed from the request: a send's check
/// allocates nothing here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Needs<'a>(pub Vec<(Cow<'a, str>, Perm)>);

impl<'a> Needs<'a> {
    fn add(&mut self, resource: Option<Cow<'a, str>>, perm: Perm) {
        let Some(resource) = resource else { return };
        match self.0.iter_mut().find(|(r, _)| *r == resource) {
            Some(entry) => entry.1 = perm,
            None => self.0.push((resource, perm)),
        }
    }

    fn add_topic(&mut self, topic: Option<&'a str>, perm: Perm) {
        self.add(topic.map(Cow::Borrowed), perm);
    }

    fn add_group(&mut self, group: Option<&str>, perm: Perm) {
        self.add(group.map(|g| Cow::Owned(retry_topic(g))), perm);
    }
}

/// What `req` needs, or why it cannot be read (4.9.7 refuses such a
/// request with the reason).
pub(crate) fn needs(req: &RemotingCommand) -> Result<Needs<'_>, String> {
    let mut needs = Needs::default();
    let get = |key: &str| req.get(key);
    let required = |key: &str| {
        req.get(key)
            .ok_or_else(|| format!("the custom field <{key}> is null"))
    };
    match req.code {
        SEND_MESSAGE => {
            // 4.9.7 reads the group of a retry send from "group", a key
            // the V1 header does not have; kept, so the same requests pass.
            let topic = get("topic");
            if topic.is_some_and(is_group) {
                needs.add_group(get("group"), Perm::SUB);
            } else {
                needs.add_topic(topic, Perm::PUB);
            }
        }
        SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => {
            let topic = get("b");
            if topic.is_some_and(is_group) {
                needs.add_group(get("a"), Perm::SUB);
            } else {
                needs.add_topic(topic, Perm::PUB);
            }
        }
        CONSUMER_SEND_MSG_BACK => needs.add_group(get("group"), Perm::SUB),
        PULL_MESSAGE => {
            needs.add_topic(get("topic"), Perm::SUB);
            needs.add_group(get("consumerGroup"), Perm::SUB);
        }
        QUERY_MESSAGE => needs.add_topic(get("topic"), Perm::SUB),
        HEART_BEAT => {
            let data = HeartbeatData::decode(&req.body).map_err(|e| e.to_string())?;
            for consumer in &data.consumer_data_set {
                needs.add_group(Some(&consumer.group_name), Perm::SUB);
                for sub in &consumer.subscription_data_set {
                    needs.add(Some(Cow::Owned(sub.topic.clone())), Perm::SUB);
                }
            }
        }
        UNREGISTER_CLIENT => {
            required("clientID")?;
            needs.add_group(get("consumerGroup"), Perm::SUB);
        }
        GET_CONSUMER_LIST_BY_GROUP => needs.add_group(Some(required("consumerGroup")?), Perm::SUB),
        UPDATE_CONSUMER_OFFSET => {
            let group = required("consumerGroup")?;
            let topic = required("topic")?;
            for key in ["queueId", "commitOffset"] {
                let value = required(key)?;
                if value.trim().parse::<i64>().is_err() {
                    return Err(format!("For input string: \"{value}\""));
                }
            }
            needs.add_group(Some(group), Perm::SUB);
            needs.add_topic(Some(topic), Perm::SUB);
        }
        _ => {}
    }
    Ok(needs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_needs_pub_and_a_retry_send_sub_on_the_group() {
        let mut req = RemotingCommand::request(SEND_MESSAGE_V2);
        req.put("a", "PG").put("b", "T");
        assert_eq!(needs(&req).expect("ok").0, [(Cow::from("T"), Perm::PUB)]);
        req.put("a", "CG").put("b", "%RETRY%CG");
        assert_eq!(
            needs(&req).expect("ok").0,
            [(Cow::from("%RETRY%CG"), Perm::SUB)]
        );
    }

    #[test]
    fn a_pull_needs_sub_on_topic_and_group() {
        let mut req = RemotingCommand::request(PULL_MESSAGE);
        req.put("topic", "T").put("consumerGroup", "G");
        let got = needs(&req).expect("ok").0;
        assert_eq!(
            got,
            [
                (Cow::from("T"), Perm::SUB),
                (Cow::from("%RETRY%G"), Perm::SUB)
            ]
        );
    }

    #[test]
    fn a_heartbeat_needs_sub_on_its_groups_and_topics() {
        let mut req = RemotingCommand::request(HEART_BEAT);
        req.body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"G","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"T","subString":"*","classFilterMode":false,"tagsSet":[],"codeSet":[],"subVersion":1,"expressionType":"TAG"}],"unitMode":false}],"producerDataSet":[]}"#.to_vec();
        let got = needs(&req).expect("ok").0;
        assert!(got.contains(&(Cow::from("%RETRY%G"), Perm::SUB)));
        assert!(got.contains(&(Cow::from("T"), Perm::SUB)));
        req.body = b"not json".to_vec();
        assert!(needs(&req).is_err());
    }

    #[test]
    fn missing_required_fields_are_reasons() {
        let req = RemotingCommand::request(UPDATE_CONSUMER_OFFSET);
        assert_eq!(
            needs(&req).expect_err("refused"),
            "the custom field <consumerGroup> is null"
        );
    }

    #[test]
    fn admin_codes() {
        assert!(needs_admin(UPDATE_AND_CREATE_TOPIC));
        assert!(needs_admin(UPDATE_AND_CREATE_ACL_CONFIG));
        assert!(!needs_admin(SEND_MESSAGE_V2));
        assert!(!needs_admin(GET_BROKER_CLUSTER_ACL_INFO));
    }
}
