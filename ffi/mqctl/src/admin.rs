//! Admin requests shared by the verbs: one request to a broker or NameServer
//! that must succeed, the cluster map, and which masters serve a topic. Every
//! error names what was being done and where, so that it reads as one line.

use std::sync::Arc;
use std::time::Duration;

use mq::{ClientError, ClientInstance};
use mq_protocol::body::{ClusterInfo, TopicRouteData};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::{LanguageCode, RemotingCommand};
use mq_protocol::headers::{CommandHeader, ConsumerGroupRequestHeader};

use crate::console::Console;
use crate::output::{failed, Failure, Outcome};

/// What every verb gets: the NameServer list, the client built on it and the
/// streams to print on.
pub struct Ctx<'a> {
    /// `--namesrv` as given (`;`-separated), for verbs that build more clients.
    pub namesrv: String,
    /// The keys requests are signed with (`--access-key`, `--secret-key`),
    /// for verbs that build more clients.
    pub credentials: Option<mq::Credentials>,
    /// The client all requests go through.
    pub instance: Arc<ClientInstance>,
    /// Where results and diagnostics go.
    pub console: &'a Console,
}

impl Ctx<'_> {
    /// Timeout of one admin request.
    pub fn timeout(&self) -> Duration {
        self.instance.config().request_timeout
    }
}

/// A request with `header`, marked as coming from a Rust client.
pub fn command(code: i32, header: &impl CommandHeader) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.language = LanguageCode::Rust;
    header.encode(&mut cmd.ext_fields);
    cmd
}

/// A request without a header.
pub fn bare_command(code: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.language = LanguageCode::Rust;
    cmd
}

/// The server's answer as an error naming `what` and `addr`.
pub fn refused(what: &str, addr: &str, resp: &RemotingCommand) -> Failure {
    let remark = resp.remark.as_deref().unwrap_or("").trim();
    failed(format!(
        "{what}: {addr} answered code {}{}{remark}",
        resp.code,
        if remark.is_empty() { "" } else { ": " }
    ))
}

/// Sends `cmd` to the broker at `addr`; any answer but SUCCESS is a failure.
pub async fn call(
    ctx: &Ctx<'_>,
    addr: &str,
    cmd: RemotingCommand,
    what: &str,
) -> Outcome<RemotingCommand> {
    let resp = call_any(ctx, addr, cmd, ctx.timeout(), what).await?;
    if resp.code != response::SUCCESS {
        return Err(refused(what, addr, &resp));
    }
    Ok(resp)
}

/// Sends `cmd` to the broker at `addr` and returns its answer, whatever the code.
pub async fn call_any(
    ctx: &Ctx<'_>,
    addr: &str,
    cmd: RemotingCommand,
    timeout: Duration,
    what: &str,
) -> Outcome<RemotingCommand> {
    ctx.instance
        .invoke(addr, cmd, timeout)
        .await
        .map_err(|e| failed(format!("{what}: {e}")))
}

/// Sends `cmd` to a NameServer (the next one when one fails); any answer but
/// SUCCESS is a failure.
pub async fn call_namesrv(
    ctx: &Ctx<'_>,
    cmd: RemotingCommand,
    what: &str,
) -> Outcome<RemotingCommand> {
    let resp = ctx
        .instance
        .invoke_namesrv(cmd)
        .await
        .map_err(|e| failed(format!("{what}: {e}")))?;
    if resp.code != response::SUCCESS {
        return Err(refused(what, "the NameServer", &resp));
    }
    Ok(resp)
}

/// GET_BROKER_CLUSTER_INFO.
pub async fn cluster_info(ctx: &Ctx<'_>) -> Outcome<ClusterInfo> {
    let what = "get cluster info";
    let resp = call_namesrv(ctx, bare_command(request::GET_BROKER_CLUSTER_INFO), what).await?;
    ClusterInfo::decode(&resp.body).map_err(|e| failed(format!("{what}: bad answer: {e}")))
}

/// A broker name and its master's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Master {
    /// Broker name.
    pub name: String,
    /// `ip:port` of broker id 0.
    pub addr: String,
}

/// The masters of `cluster`, or of every cluster when `None`.
pub fn cluster_masters(info: &ClusterInfo, cluster: Option<&str>) -> Outcome<Vec<Master>> {
    let names: Vec<&String> = match cluster {
        Some(c) => match info.cluster_addr_table.get(c) {
            Some(names) => names.iter().collect(),
            None => {
                let known: Vec<&str> = info.cluster_addr_table.keys().map(String::as_str).collect();
                return Err(failed(format!(
                    "cluster {c} not found (known: {})",
                    if known.is_empty() {
                        "none, no broker registered".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        },
        None => info.cluster_addr_table.values().flatten().collect(),
    };
    let mut masters: Vec<Master> = names
        .into_iter()
        .filter_map(|name| {
            let addr = info.broker_addr_table.get(name)?.broker_addrs.get(&0)?;
            Some(Master {
                name: name.clone(),
                addr: addr.clone(),
            })
        })
        .collect();
    masters.sort();
    masters.dedup();
    Ok(masters)
}

/// A topic's route from the NameServer, with a clear error when it has none.
pub async fn route(ctx: &Ctx<'_>, topic: &str) -> Outcome<TopicRouteData> {
    match ctx.instance.fetch_route(topic).await {
        Ok(route) => Ok(route),
        Err(ClientError::NoRoute(_)) => Err(failed(format!(
            "topic {topic} does not exist (the NameServer has no route for it)"
        ))),
        Err(e) => Err(failed(format!("get route of {topic}: {e}"))),
    }
}

/// The masters serving a topic, with each one's readable queue count; a
/// broker without a master online is skipped with a warning on `console`.
pub fn route_masters(console: &Console, route: &TopicRouteData) -> Vec<(Master, i32)> {
    let mut out: Vec<(Master, i32)> = route
        .queue_datas
        .iter()
        .filter_map(|qd| {
            let broker = route
                .broker_datas
                .iter()
                .find(|b| b.broker_name == qd.broker_name)?;
            let Some(addr) = broker.broker_addrs.get(&0) else {
                console.warn(format!(
                    "broker {} has no master online; skipped",
                    qd.broker_name
                ));
                return None;
            };
            Some((
                Master {
                    name: qd.broker_name.clone(),
                    addr: addr.clone(),
                },
                qd.read_queue_nums,
            ))
        })
        .collect();
    out.sort();
    out
}

/// The client ids of the group's consumers online at `addr` (none when the
/// broker answers CONSUMER_NOT_ONLINE).
pub async fn consumers_online(
    ctx: &Ctx<'_>,
    addr: &str,
    group: &str,
) -> Outcome<Option<mq_protocol::body::ConsumerConnection>> {
    let what = format!("get consumers of {group}");
    let cmd = command(
        request::GET_CONSUMER_CONNECTION_LIST,
        &ConsumerGroupRequestHeader {
            consumer_group: group.to_owned(),
        },
    );
    let resp = call_any(ctx, addr, cmd, ctx.timeout(), &what).await?;
    match resp.code {
        response::SUCCESS => mq_protocol::body::ConsumerConnection::decode(&resp.body)
            .map(Some)
            .map_err(|e| failed(format!("{what}: bad answer from {addr}: {e}"))),
        response::CONSUMER_NOT_ONLINE => Ok(None),
        _ => Err(refused(&what, addr, &resp)),
    }
}
