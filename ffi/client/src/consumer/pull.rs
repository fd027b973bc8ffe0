//! The PULL_MESSAGE kernel both consumers stand on: one request, and its
//! answer interpreted as Java's PullAPIWrapper does (decode and decompress,
//! filter by tag string, stamp MIN/MAX_OFFSET), plus the delays a pull loop
//! waits after an error or while its queue's buffer is full.

use std::sync::Arc;
use std::time::Duration;

use mq_protocol::body::{MessageQueue, SubscriptionData, EXPRESSION_TYPE_TAG};
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{
    pull_sys_flag, CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};

use crate::connection::client_request;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::{decode_messages, MessageExt};

/// Request timeout of a long poll (`consumerTimeoutMillisWhenSuspend`): the
/// broker's hold plus room for the answer.
pub(crate) const SUSPEND_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay before pulling again after an error (`pullTimeDelayMillsWhenException`).
pub(crate) const PULL_DELAY_ON_ERROR: Duration = Duration::from_secs(1);
/// Delay after the broker answered FLOW_CONTROL.
const PULL_DELAY_ON_FLOW_CONTROL: Duration = Duration::from_millis(20);
/// Delay while a queue's buffer is over its limits (`PULL_TIME_DELAY_MILLS_WHEN_FLOW_CONTROL`).
pub(crate) const PULL_DELAY_WHEN_FULL: Duration = Duration::from_millis(50);

/// Properties stamped on every pulled message: the queue's smallest and
/// next offsets when it was pulled (as Java's PullAPIWrapper stamps them).
pub(crate) const MIN_OFFSET: &str = "MIN_OFFSET";
/// See [`MIN_OFFSET`].
pub(crate) const MAX_OFFSET: &str = "MAX_OFFSET";

/// What a pull found.
pub(crate) enum PullStatus {
    /// Messages, already decoded and filtered by tag (may be empty after filtering).
    Found(Vec<MessageExt>),
    /// Nothing new (the long poll expired).
    NoNewMsg,
    /// Nothing matched the subscription.
    NoMatched,
    /// The offset is outside the queue; continue at `next_begin_offset`.
    OffsetIllegal,
}

/// A pull's answer.
pub(crate) struct PullOutcome {
    pub(crate) status: PullStatus,
    pub(crate) next_begin_offset: i64,
    /// Broker id to pull from next time.
    pub(crate) suggest_which_broker_id: i64,
}

/// One PULL_MESSAGE request.
pub(crate) struct PullArgs<'a> {
    pub(crate) group: &'a str,
    pub(crate) mq: &'a MessageQueue,
    pub(crate) offset: i64,
    pub(crate) max_nums: i32,
    pub(crate) sys_flag: i32,
    pub(crate) commit_offset: i64,
    pub(crate) suspend: Duration,
    pub(crate) timeout: Duration,
    pub(crate) subscription: &'a SubscriptionData,
    /// Broker id (0 = master) the last response suggested.
    pub(crate) broker_id: i64,
}

/// Sends one PULL_MESSAGE and interprets the answer as PullAPIWrapper does:
/// decode (decompressing), filter by tag string, stamp MIN/MAX_OFFSET.
pub(crate) async fn pull_message(
    instance: &Arc<ClientInstance>,
    args: PullArgs<'_>,
) -> Result<PullOutcome> {
    let addr = instance.queue_broker_addr(args.mq, args.broker_id).await?;
    let from_master = instance.master_addr(&args.mq.broker_name).as_deref() == Some(&addr);
    let mut sys_flag = args.sys_flag;
    if !from_master {
        // Slaves never store offsets.
        sys_flag &= !pull_sys_flag::COMMIT_OFFSET;
    }
    let mut cmd = client_request(request::PULL_MESSAGE);
    PullMessageRequestHeader {
        consumer_group: args.group.to_owned(),
        topic: args.mq.topic.clone(),
        queue_id: args.mq.queue_id,
        queue_offset: args.offset,
        max_msg_nums: args.max_nums,
        sys_flag,
        commit_offset: args.commit_offset,
        suspend_timeout_millis: i64::try_from(args.suspend.as_millis()).unwrap_or(i64::MAX),
        subscription: Some(args.subscription.sub_string.clone()),
        sub_version: args.subscription.sub_version,
        expression_type: Some(args.subscription.expression_type.clone()),
    }
    .encode(&mut cmd.ext_fields);
    cmd.put("bname", &args.mq.broker_name);
    let resp = instance.invoke(&addr, cmd, args.timeout).await?;
    let status_code = resp.code;
    if !matches!(
        status_code,
        response::SUCCESS
            | response::PULL_NOT_FOUND
            | response::PULL_RETRY_IMMEDIATELY
            | response::PULL_OFFSET_MOVED
    ) {
        return Err(ClientError::refused(resp));
    }
    let header = PullMessageResponseHeader::decode(&resp.ext_fields)
        .map_err(|e| ClientError::decode("pull response", e))?;
    let status = match status_code {
        response::SUCCESS => {
            let mut msgs = decode_messages(&resp.body, &args.mq.broker_name)?;
            msgs.retain(|m| matches_tags(args.subscription, m));
            // Formatted once per pull, not once per message.
            let (min, max) = (header.min_offset.to_string(), header.max_offset.to_string());
            for m in &mut msgs {
                m.properties.insert(MIN_OFFSET.into(), min.clone());
                m.properties.insert(MAX_OFFSET.into(), max.clone());
            }
            PullStatus::Found(msgs)
        }
        response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
        response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatched,
        _ => PullStatus::OffsetIllegal,
    };
    Ok(PullOutcome {
        status,
        next_begin_offset: header.next_begin_offset,
        suggest_which_broker_id: header.suggest_which_broker_id,
    })
}

/// The client-side tag filter: brokers filter on tag hash codes, which
/// collide, so the tag string is checked again here.
pub(crate) fn matches_tags(sub: &SubscriptionData, msg: &MessageExt) -> bool {
    if sub.expression_type != EXPRESSION_TYPE_TAG || sub.is_sub_all() {
        return true;
    }
    msg.tags().is_some_and(|t| sub.tags_set.contains(t))
}

/// How long to wait before retrying after a failed pull.
pub(crate) fn pull_retry_delay(e: &ClientError) -> Duration {
    if e.response_code() == Some(response::FLOW_CONTROL) {
        PULL_DELAY_ON_FLOW_CONTROL
    } else {
        PULL_DELAY_ON_ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: Option<&str>) -> MessageExt {
        let mut m = MessageExt::for_test(0);
        if let Some(t) = tag {
            m.properties
                .insert(mq_protocol::properties::keys::TAGS.to_owned(), t.to_owned());
        }
        m
    }

    #[test]
    fn tag_filter_checks_the_tag_string() {
        let sub = SubscriptionData::from_expression("T", "TagA || TagB");
        assert!(matches_tags(&sub, &msg(Some("TagA"))));
        assert!(matches_tags(&sub, &msg(Some("TagB"))));
        assert!(!matches_tags(&sub, &msg(Some("TagC"))));
        assert!(!matches_tags(&sub, &msg(None)));
        let all = SubscriptionData::from_expression("T", "*");
        assert!(matches_tags(&all, &msg(None)));
        assert!(matches_tags(&all, &msg(Some("TagC"))));
    }

    #[test]
    fn flow_control_retries_sooner() {
        let fc = ClientError::Broker {
            code: response::FLOW_CONTROL,
            remark: String::new(),
        };
        assert_eq!(pull_retry_delay(&fc), Duration::from_millis(20));
        assert_eq!(
            pull_retry_delay(&ClientError::Closed),
            Duration::from_secs(1)
        );
    }
}
