//! Subscription groups, as admin tools manage them:
//! UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, GET_ALL_SUBSCRIPTIONGROUP_CONFIG (also
//! what a slave copies) and DELETE_SUBSCRIPTIONGROUP.

use mq_protocol::body::SubscriptionGroupConfig;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, DeleteSubscriptionGroupRequestHeader};

use super::{ok, ok_body, Reply};
use crate::broker::error::BrokerError;
use crate::broker::Broker;

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: creates or replaces a group's
/// configuration.
pub(crate) fn update_and_create_subscriptiongroup(broker: &Broker, req: &RemotingCommand) -> Reply {
    let config =
        SubscriptionGroupConfig::decode(&req.body).map_err(|source| BrokerError::Body {
            what: "subscription group",
            source,
        })?;
    if config.group_name.is_empty() {
        return Err(BrokerError::GroupNameMissing);
    }
    broker.groups.put(config)?;
    Ok(ok(req))
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG: every group, with the data version.
pub(crate) fn get_all_subscriptiongroup_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    Ok(ok_body(req, broker.groups.snapshot().encode()))
}

/// DELETE_SUBSCRIPTIONGROUP: forgets a group and its offsets.
pub(crate) fn delete_subscriptiongroup(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = DeleteSubscriptionGroupRequestHeader::decode(&req.ext_fields)?;
    broker.groups.delete(&h.group_name)?;
    broker.offsets.remove_group(&h.group_name);
    Ok(ok(req))
}
