//! `mqctl group progress`: how far a consumer group is behind, per queue, and
//! how fast it consumes (GET_CONSUME_STATS on every master), and which of its
//! consumers are online (GET_CONSUMER_CONNECTION_LIST).

use std::collections::BTreeMap;

use argh::FromArgs;
use mq_protocol::body::{Connection, ConsumeStats, MessageQueue, OffsetWrapper};
use mq_protocol::codes::request;
use mq_protocol::headers::GetConsumeStatsRequestHeader;

use crate::admin::{self, call, command, Ctx, Master};
use crate::output::{failed, format_ms, usage, Format, Outcome, Table};

/// consumer groups: progress
#[derive(FromArgs)]
#[argh(subcommand, name = "group")]
pub struct GroupCmd {
    #[argh(subcommand)]
    cmd: GroupSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum GroupSub {
    Progress(ProgressCmd),
}

impl GroupCmd {
    /// Runs the sub-verb.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match &self.cmd {
            GroupSub::Progress(c) => c.run(ctx).await,
        }
    }
}

/// show a group's offsets and lag per queue, and its consumers online
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "progress",
    example = "{command_name} --group my_group",
    example = "{command_name} --group my_group --topic TopicTest --format json",
    note = "DIFF is the broker's max offset minus the group's committed offset. Exits 1 when no broker knows the group."
)]
pub struct ProgressCmd {
    /// consumer group
    #[argh(option, short = 'g')]
    group: String,
    /// only this topic (default: every topic the group has offsets for)
    #[argh(option, short = 't')]
    topic: Option<String>,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl ProgressCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        if self.group.is_empty() {
            return Err(usage("--group must not be empty"));
        }
        // Brokers that may hold the group's offsets: the topic's masters, or
        // every master (mq's pull consumers have no retry topic to route by).
        let masters: Vec<Master> = match &self.topic {
            Some(topic) => admin::route_masters(ctx.console, &admin::route(ctx, topic).await?)
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
            None => admin::cluster_masters(&admin::cluster_info(ctx).await?, None)?,
        };
        let mut offsets: BTreeMap<MessageQueue, OffsetWrapper> = BTreeMap::new();
        let mut clients: BTreeMap<String, Connection> = BTreeMap::new();
        let mut model = None;
        // Messages per second the group pulled over the last minute, summed
        // over the brokers (what mqadmin statsAll shows as OutTPS).
        let mut consume_tps = 0.0;
        for m in &masters {
            let header = GetConsumeStatsRequestHeader {
                consumer_group: self.group.clone(),
                topic: self.topic.clone(),
            };
            let what = format!("get consume stats of {} from {}", self.group, m.name);
            let resp = call(
                ctx,
                &m.addr,
                command(request::GET_CONSUME_STATS, &header),
                &what,
            )
            .await?;
            let stats = ConsumeStats::decode(&resp.body)
                .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
            consume_tps += stats.consume_tps;
            offsets.extend(stats.offset_table);
            if let Some(conns) = admin::consumers_online(ctx, &m.addr, &self.group).await? {
                model = Some((conns.consume_type, conns.message_model));
                for c in conns.connection_set {
                    clients.insert(c.client_id.clone(), c);
                }
            }
        }
        if offsets.is_empty() && clients.is_empty() {
            return Err(failed(format!(
                "consumer group {} has no offsets on any broker and no consumer online",
                self.group
            )));
        }
        let total: i64 = offsets
            .values()
            .map(|o| (o.broker_offset - o.consumer_offset).max(0))
            .sum();
        match self.format {
            Format::Json => ctx.console.json_line(&serde_json::json!({
                "group": self.group,
                "queues": offsets.iter().map(|(q, o)| serde_json::json!({
                    "topic": q.topic,
                    "brokerName": q.broker_name,
                    "queueId": q.queue_id,
                    "brokerOffset": o.broker_offset,
                    "consumerOffset": o.consumer_offset,
                    "diff": (o.broker_offset - o.consumer_offset).max(0),
                    "lastTimestamp": o.last_timestamp,
                })).collect::<Vec<_>>(),
                "totalDiff": total,
                "consumeTps": consume_tps,
                "consumeType": model.map(|m| m.0.as_str()),
                "messageModel": model.map(|m| m.1.as_str()),
                "clients": clients.values().map(|c| serde_json::json!({
                    "clientId": c.client_id,
                    "clientAddr": c.client_addr,
                    "language": c.language,
                    "version": c.version,
                })).collect::<Vec<_>>(),
            })),
            Format::Text => {
                let mut t = Table::new(&[
                    "TOPIC",
                    "BROKER",
                    "QUEUE",
                    "BROKER OFFSET",
                    "CONSUMER OFFSET",
                    "DIFF",
                    "LAST CONSUMED (UTC)",
                ]);
                for (q, o) in &offsets {
                    t.row(vec![
                        q.topic.clone(),
                        q.broker_name.clone(),
                        q.queue_id.to_string(),
                        o.broker_offset.to_string(),
                        o.consumer_offset.to_string(),
                        (o.broker_offset - o.consumer_offset).max(0).to_string(),
                        format_ms(o.last_timestamp),
                    ]);
                }
                t.print(ctx.console)?;
                ctx.console.line(format_args!("total diff: {total}"))?;
                ctx.console.line(format_args!(
                    "consumed: {consume_tps:.2} msgs/s over the last minute"
                ))?;
                ctx.console.line("")?;
                if clients.is_empty() {
                    return ctx.console.line("consumers online: 0");
                }
                let (ty, mm) = model.map_or(("-", "-"), |(t, m)| (t.as_str(), m.as_str()));
                ctx.console.line(format_args!(
                    "consumers online: {} ({ty}, {mm})",
                    clients.len()
                ))?;
                let mut c = Table::new(&["CLIENT ID", "ADDRESS", "LANGUAGE", "VERSION"]);
                for conn in clients.values() {
                    c.row(vec![
                        conn.client_id.clone(),
                        conn.client_addr.clone(),
                        conn.language.clone(),
                        conn.version.to_string(),
                    ]);
                }
                c.print(ctx.console)
            }
        }
    }
}
