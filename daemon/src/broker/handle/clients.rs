//! Clients: HEART_BEAT (producers and consumers announce themselves and their
//! subscriptions), UNREGISTER_CLIENT, CHECK_CLIENT_CONFIG, and who is
//! connected (GET_CONSUMER_LIST_BY_GROUP, GET_CONSUMER_CONNECTION_LIST,
//! GET_PRODUCER_CONNECTION_LIST).

use std::sync::Arc;
use std::time::Instant;

use mq_protocol::body::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, HeartbeatData, MessageModel,
    EXPRESSION_TYPE_TAG,
};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, ConsumerGroupRequestHeader, ProducerGroupRequestHeader,
    UnregisterClientRequestHeader,
};

use super::{group_topic, ok, ok_body, Reply};
use crate::broker::error::BrokerError;
use crate::broker::state::clients::ClientChannel;
use crate::broker::Broker;
use crate::server::Connection;
use mq_protocol::topics::retry_topic;

/// HEART_BEAT: records the client's producer and consumer groups. A consumer
/// group that changed (a member or a subscription) is told so.
pub(crate) fn heart_beat(broker: &Broker, conn: &Arc<Connection>, req: &RemotingCommand) -> Reply {
    let data = HeartbeatData::decode(&req.body).map_err(|source| BrokerError::Body {
        what: "HEART_BEAT",
        source,
    })?;
    let (language, version) = (req.language.name().to_owned(), req.version);
    let channel = || ClientChannel {
        conn: conn.clone(),
        client_id: data.client_id.clone(),
        language: language.clone(),
        version,
        last_update: Instant::now(),
    };
    for consumer in &data.consumer_data_set {
        if consumer.group_name.is_empty() {
            continue;
        }
        let group = broker.groups.find_or_create(&consumer.group_name)?;
        // As 4.9: an unknown group (with auto-creation off) may still heartbeat;
        // it only gets no retry topic, and its pulls are refused.
        if let Some(group) = group.filter(|_| consumer.message_model == MessageModel::Clustering) {
            // Clustering consumers need their retry topic routed before they rebalance.
            let retry = retry_topic(&consumer.group_name);
            group_topic(broker, &retry, group.retry_queue_nums.max(1))?;
        }
        if broker.clients.register_consumer(channel(), consumer) {
            log::info!(
                "consumer group {} changed ({} from {})",
                consumer.group_name,
                data.client_id,
                conn.peer
            );
            broker.notify_consumer_ids_changed(&consumer.group_name);
        }
    }
    for producer in &data.producer_data_set {
        if !producer.group_name.is_empty() {
            broker
                .clients
                .register_producer(&producer.group_name, channel());
        }
    }
    Ok(ok(req))
}

/// UNREGISTER_CLIENT: a client leaves its groups.
pub(crate) fn unregister_client(
    broker: &Broker,
    conn: &Connection,
    req: &RemotingCommand,
) -> Reply {
    let h = UnregisterClientRequestHeader::decode(&req.ext_fields)?;
    if let Some(group) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
        broker.clients.unregister_producer(group, conn.id);
    }
    if let Some(group) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
        if broker.clients.unregister_consumer(group, conn.id) {
            log::info!("consumer {} left {group}", h.client_id);
            broker.notify_consumer_ids_changed(group);
        }
    }
    Ok(ok(req))
}

/// CHECK_CLIENT_CONFIG: whether the broker can filter as the consumer asks
/// (by tag: yes; by SQL92: no).
pub(crate) fn check_client_config(req: &RemotingCommand) -> Reply {
    let body = CheckClientRequestBody::decode(&req.body).map_err(|source| BrokerError::Body {
        what: "CHECK_CLIENT_CONFIG",
        source,
    })?;
    match body.subscription_data {
        Some(sub)
            if sub.expression_type != EXPRESSION_TYPE_TAG && !sub.expression_type.is_empty() =>
        {
            Err(BrokerError::Sql92)
        }
        _ => Ok(ok(req)),
    }
}

/// GET_CONSUMER_LIST_BY_GROUP: the client ids of a group's members.
pub(crate) fn get_consumer_list_by_group(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ConsumerGroupRequestHeader::decode(&req.ext_fields)?;
    let ids = broker.clients.consumer_ids(&h.consumer_group);
    if ids.is_empty() {
        return Err(BrokerError::NoConsumer {
            group: h.consumer_group,
        });
    }
    let body = GetConsumerListByGroupResponseBody {
        consumer_id_list: ids,
    };
    Ok(ok_body(req, body.encode()))
}

/// GET_CONSUMER_CONNECTION_LIST: a consumer group's members, connections and
/// subscriptions.
pub(crate) fn get_consumer_connection_list(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ConsumerGroupRequestHeader::decode(&req.ext_fields)?;
    match broker.clients.consumer_connection(&h.consumer_group) {
        Some(conns) => Ok(ok_body(req, conns.encode())),
        None => Err(BrokerError::ConsumerNotOnline {
            group: h.consumer_group,
        }),
    }
}

/// GET_PRODUCER_CONNECTION_LIST: a producer group's members and connections.
pub(crate) fn get_producer_connection_list(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ProducerGroupRequestHeader::decode(&req.ext_fields)?;
    let conns = broker.clients.producer_connection(&h.producer_group);
    if conns.connection_set.is_empty() {
        return Err(BrokerError::NoProducer {
            group: h.producer_group,
        });
    }
    Ok(ok_body(req, conns.encode()))
}
