//! A slave copies its master's metadata (RocketMQ's SlaveSynchronize): topic
//! configs and subscription groups (taken whole when their data version
//! differs), consumer offsets (the master's entries override), and delay
//! offsets, every 10 s, over ordinary requests to the master's main port
//! (GET_ALL_TOPIC_CONFIG, GET_ALL_CONSUMER_OFFSET, GET_ALL_DELAY_OFFSET,
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG). The master's address comes from the
//! NameServers' answer to each registration; while no master is registered
//! nothing is copied, so what consumers commit to the slave meanwhile stays
//! until the master is back.

use std::sync::Arc;
use std::time::Duration;

use mq_protocol::body::{
    ConsumerOffsetSerializeWrapper, SubscriptionGroupWrapper, TopicConfigSerializeWrapper,
};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;

use crate::broker::Broker;
use crate::peer::PeerConnection;

/// How often a slave copies (RocketMQ: every 10 s).
const SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// How often a slave that knows no master looks again.
const NO_MASTER_PAUSE: Duration = Duration::from_secs(1);
/// How long one request to the master may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Copies from the master every [`SYNC_INTERVAL`] (at once when a master
/// first becomes known), until shutdown.
pub(crate) async fn sync_loop(broker: Arc<Broker>) {
    let mut peer: Option<PeerConnection> = None;
    loop {
        let pause = match broker.master_addr() {
            Some(addr) if addr != broker.config().broker_addr().to_string() => {
                if peer.as_ref().is_none_or(|p| p.addr() != addr) {
                    peer = Some(
                        PeerConnection::new(addr, REQUEST_TIMEOUT)
                            .with_credentials(broker.config().credentials.clone()),
                    );
                }
                let master = peer.as_ref().expect("set above");
                if let Err(e) = sync_all(&broker, master).await {
                    log::warn!("copying from master {}: {e}", master.addr());
                }
                SYNC_INTERVAL
            }
            _ => NO_MASTER_PAUSE,
        };
        // Woken early when the master address first appears.
        let wait = async {
            let mut waited = Duration::ZERO;
            while waited < pause {
                let step = NO_MASTER_PAUSE.min(pause - waited);
                async_io::Timer::after(step).await;
                waited += step;
                let now = broker.master_addr();
                if now.is_some() && peer.as_ref().map(|p| p.addr()) != now.as_deref() {
                    return;
                }
            }
        };
        if broker.shutdown.wait_or(wait).await {
            return;
        }
    }
}

/// One round: the four tables, each on its own (one failing does not stop
/// the others).
async fn sync_all(broker: &Broker, master: &PeerConnection) -> Result<(), String> {
    let mut failures = Vec::new();
    match fetch(master, request::GET_ALL_TOPIC_CONFIG)
        .await
        .and_then(|b| {
            TopicConfigSerializeWrapper::decode(&b).map_err(|e| format!("topic configs: {e}"))
        }) {
        Ok(topics) => match broker.topics.replace_all(topics) {
            Ok(true) => {
                log::info!("took the topic configs of master {}", master.addr());
                // The NameServers list a slave's topics too.
                broker.register_soon();
            }
            Ok(false) => {}
            Err(e) => failures.push(format!("saving topic configs: {e}")),
        },
        Err(e) => failures.push(e),
    }
    match fetch(master, request::GET_ALL_CONSUMER_OFFSET)
        .await
        .and_then(|b| {
            ConsumerOffsetSerializeWrapper::decode(&b).map_err(|e| format!("consumer offsets: {e}"))
        }) {
        Ok(offsets) => {
            broker.offsets.merge_from_master(offsets);
            if let Err(e) = broker.offsets.persist() {
                failures.push(format!("saving consumer offsets: {e}"));
            }
        }
        Err(e) => failures.push(e),
    }
    match fetch(master, request::GET_ALL_DELAY_OFFSET).await {
        Ok(body) => match broker.schedule.replace_from(&body) {
            Ok(()) => {
                if let Err(e) = broker.schedule.persist() {
                    failures.push(format!("saving delay offsets: {e}"));
                }
            }
            Err(e) => failures.push(format!("delay offsets: {e}")),
        },
        Err(e) => failures.push(e),
    }
    match fetch(master, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
        .await
        .and_then(|b| {
            SubscriptionGroupWrapper::decode(&b).map_err(|e| format!("subscription groups: {e}"))
        }) {
        Ok(groups) => {
            if let Err(e) = broker.groups.replace_all(groups) {
                failures.push(format!("saving subscription groups: {e}"));
            }
        }
        Err(e) => failures.push(e),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The body of the master's answer to a request with no header.
async fn fetch(master: &PeerConnection, code: i32) -> Result<Vec<u8>, String> {
    let answer = master
        .invoke(RemotingCommand::request(code), REQUEST_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if answer.code != response::SUCCESS {
        return Err(format!(
            "request {code}: code {} {}",
            answer.code,
            answer.remark.unwrap_or_default()
        ));
    }
    Ok(answer.body)
}
