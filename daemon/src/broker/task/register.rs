//! Registration with every NameServer: at start, every `registerNameServerPeriod`
//! (30 s), and at once when a topic is created or deleted; UNREGISTER_BROKER at
//! shutdown. NameServers never talk to each other, so each gets its own.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{bounded, Receiver, Sender};

use mq_protocol::body::{RegisterBrokerBody, TopicConfigSerializeWrapper};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    BrokerIdentityRequestHeader, CommandHeader, RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
};

use crate::broker::Broker;
use crate::peer::PeerConnection;
use mq_protocol::acl::Credentials;

/// How long one registration may take (RocketMQ: registerBrokerTimeoutMills).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);

/// Connections to the NameServers and the "register now" signal.
pub(crate) struct Registrar {
    namesrvs: Vec<PeerConnection>,
    wake: (Sender<()>, Receiver<()>),
}

impl Registrar {
    /// A registrar for these NameServer addresses, signing with
    /// `credentials` when given.
    pub(crate) fn new(addrs: Vec<String>, credentials: Option<Credentials>) -> Self {
        Registrar {
            namesrvs: addrs
                .into_iter()
                .map(|addr| {
                    PeerConnection::new(addr, Duration::from_secs(3))
                        .with_credentials(credentials.clone())
                })
                .collect(),
            wake: bounded(1),
        }
    }

    /// Asks the loop to register now (coalesced).
    pub(crate) fn wake(&self) {
        // A pending wake-up covers this one.
        let _ = self.wake.0.try_send(());
    }
}

/// The body of a registration: every topic, with the broker's permission applied.
fn register_body(broker: &Broker) -> Vec<u8> {
    let mut wrapper: TopicConfigSerializeWrapper = broker.topics.all();
    let broker_perm = broker.config().broker_permission;
    for topic in wrapper.topic_config_table.values_mut() {
        // A read-only broker announces read-only topics (RocketMQ does the same).
        if broker_perm & crate::broker::state::topics::perm::WRITE == 0 {
            topic.perm &= broker_perm;
        }
    }
    RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: Vec::new(),
    }
    .encode()
}

/// Registers with every NameServer once; returns how many accepted.
pub(crate) async fn register_all(broker: &Arc<Broker>) -> usize {
    let config = broker.config();
    let body = register_body(broker);
    let header = RegisterBrokerRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: config.broker_addr().to_string(),
        cluster_name: config.cluster_name.clone(),
        ha_server_addr: config.ha_addr().to_string(),
        broker_id: config.broker_id,
        compressed: Some(false),
        body_crc32: Some((crc32fast::hash(&body) & 0x7FFF_FFFF) as i32),
    };
    let mut accepted = 0;
    // A slave learns its master from the answers (the first that names one).
    let mut master: Option<RegisterBrokerResponseHeader> = None;
    for namesrv in &broker.registrar.namesrvs {
        let addr = namesrv.addr();
        let mut cmd = RemotingCommand::request(request::REGISTER_BROKER);
        header.encode(&mut cmd.ext_fields);
        cmd.body = body.clone();
        match namesrv.invoke(cmd, REGISTER_TIMEOUT).await {
            Ok(resp) if resp.code == response::SUCCESS => {
                accepted += 1;
                if master.as_ref().is_none_or(|m| m.master_addr.is_none()) {
                    master = RegisterBrokerResponseHeader::decode(&resp.ext_fields).ok();
                }
            }
            Ok(resp) => log::warn!(
                "NameServer {addr} refused registration: code {} {}",
                resp.code,
                resp.remark.unwrap_or_default()
            ),
            Err(e) => log::warn!("registering with NameServer {addr}: {e}"),
        }
    }
    if accepted > 0 {
        let master = master.unwrap_or_default();
        broker.set_master(
            master.master_addr.filter(|a| !a.is_empty()),
            master.ha_server_addr,
        );
    }
    accepted
}

/// How soon a slave that learned no master registers again, at first.
const MASTER_RETRY_FIRST: Duration = Duration::from_secs(1);

/// Registers now and then every period, and whenever woken, until shutdown.
pub(crate) async fn register_loop(broker: Arc<Broker>) {
    if broker.registrar.namesrvs.is_empty() {
        log::warn!("no namesrvAddr configured: clients will not find this broker");
        return;
    }
    // A slave that registered before its master learns the master's address
    // only from a later answer: it asks again after 1, 2, 4... s instead of
    // a whole period, so that a pair started together links in seconds
    // (until then its master answers SLAVE_NOT_AVAILABLE).
    let mut master_retry = MASTER_RETRY_FIRST;
    loop {
        let n = register_all(&broker).await;
        log::debug!(
            "registered with {n} of {} NameServers",
            broker.registrar.namesrvs.len()
        );
        let full_period = broker.config().register_name_server_period;
        let mut period = full_period;
        if broker.awaits_master() {
            period = full_period.min(master_retry);
            master_retry = (master_retry * 2).min(full_period);
        } else {
            master_retry = MASTER_RETRY_FIRST;
        }
        let woken_or_due = futures_lite::future::or(
            async {
                // A wake-up or the period, whichever comes first.
                let _ = broker.registrar.wake.1.recv().await;
            },
            async {
                async_io::Timer::after(period).await;
            },
        );
        let stop = broker.shutdown.wait_or(woken_or_due).await;
        if stop || broker.is_stopping() {
            return;
        }
    }
}

/// Tells every NameServer this broker is leaving.
pub(crate) async fn unregister_all(broker: &Arc<Broker>) {
    let config = broker.config();
    let header = BrokerIdentityRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: config.broker_addr().to_string(),
        cluster_name: config.cluster_name.clone(),
        broker_id: config.broker_id,
    };
    for namesrv in &broker.registrar.namesrvs {
        let mut cmd = RemotingCommand::request(request::UNREGISTER_BROKER);
        header.encode(&mut cmd.ext_fields);
        if let Err(e) = namesrv.invoke(cmd, Duration::from_secs(3)).await {
            log::warn!("unregistering from NameServer {}: {e}", namesrv.addr());
        }
    }
}
