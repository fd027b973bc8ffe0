//! Requests brokers send to a consumer group's members: NOTIFY_CONSUMER_IDS_CHANGED
//! (rebalance now) and RESET_CONSUMER_CLIENT_OFFSET (start again from these
//! offsets, as `mqctl` or an admin tool asked).

use mq_protocol::body::{MessageQueue, ResetOffsetBody};
use mq_protocol::codes::request;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, ConsumerGroupRequestHeader, ResetOffsetRequestHeader};

/// Whether a broker→client request is NOTIFY_CONSUMER_IDS_CHANGED for `group`.
pub(crate) fn is_ids_changed_for(request: &RemotingCommand, group: &str) -> bool {
    request.code == request::NOTIFY_CONSUMER_IDS_CHANGED
        && ConsumerGroupRequestHeader::decode(&request.ext_fields)
            .is_ok_and(|h| h.consumer_group == group)
}

/// The offsets of a RESET_CONSUMER_CLIENT_OFFSET request for `group`, if it is one.
pub(crate) fn reset_offsets_for(
    request: &RemotingCommand,
    group: &str,
) -> Option<Vec<(MessageQueue, i64)>> {
    if request.code != request::RESET_CONSUMER_CLIENT_OFFSET {
        return None;
    }
    let header = ResetOffsetRequestHeader::decode(&request.ext_fields).ok()?;
    if header.group != group {
        return None;
    }
    match ResetOffsetBody::decode(&request.body) {
        Ok(body) => Some(body.offset_table.into_iter().collect()),
        Err(e) => {
            log::warn!("{group}: bad reset-offset body: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_is_recognised_for_the_group_only() {
        let mut cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED);
        cmd.put("consumerGroup", "G");
        assert!(is_ids_changed_for(&cmd, "G"));
        assert!(!is_ids_changed_for(&cmd, "H"));
    }
}
