//! `mqctl offset reset`: moves a consumer group's offsets on every queue of a
//! topic to the first message stored at or after a time, with
//! INVOKE_BROKER_TO_RESET_OFFSET on each master (which also tells the group's
//! online consumers); on a broker without it, SEARCH_OFFSET_BY_TIMESTAMP then a
//! synchronous UPDATE_CONSUMER_OFFSET per queue.

use argh::FromArgs;
use mq_protocol::body::ResetOffsetBody;
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{
    CommandHeader, OffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    ResetOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};

use crate::admin::{self, call, call_any, command, refused, Ctx};
use crate::output::{failed, usage, Format, Outcome, Table};

/// consumer offsets: reset
#[derive(FromArgs)]
#[argh(subcommand, name = "offset")]
pub struct OffsetCmd {
    #[argh(subcommand)]
    cmd: OffsetSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum OffsetSub {
    Reset(ResetCmd),
}

impl OffsetCmd {
    /// Runs the sub-verb.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match &self.cmd {
            OffsetSub::Reset(c) => c.run(ctx).await,
        }
    }
}

/// reset a group's offsets on a topic to a point in time
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "reset",
    example = "{command_name} --group my_group --topic TopicTest --timestamp 1700000000000",
    example = "{command_name} --group my_group --topic TopicTest --timestamp 0",
    note = "Each queue's offset becomes that of its first message stored at or after the timestamp (0: the oldest message; a future time: the end). Consumers of the group that are online are told to move there too."
)]
pub struct ResetCmd {
    /// consumer group
    #[argh(option, short = 'g')]
    group: String,
    /// topic
    #[argh(option, short = 't')]
    topic: String,
    /// store time to reset to, in ms since the epoch
    #[argh(option, short = 's')]
    timestamp: i64,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl ResetCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        if self.group.is_empty() || self.topic.is_empty() {
            return Err(usage("--group and --topic must not be empty"));
        }
        if self.timestamp < 0 {
            return Err(usage("--timestamp must not be negative"));
        }
        let route = admin::route(ctx, &self.topic).await?;
        let masters = admin::route_masters(ctx.console, &route);
        let mut online = 0;
        let mut told_consumers = true;
        let mut rows = Vec::new();
        for (m, queues) in &masters {
            if let Some(conns) = admin::consumers_online(ctx, &m.addr, &self.group).await? {
                online = online.max(conns.connection_set.len());
            }
            // The broker resets and tells the group's online consumers
            // (INVOKE_BROKER_TO_RESET_OFFSET), as mqadmin resetOffsetByTime does.
            let mut olds = Vec::new();
            for queue_id in 0..*queues {
                olds.push(self.committed(ctx, &m.addr, queue_id).await?);
            }
            let what = format!("reset offsets of {} on {}", self.group, m.name);
            let invoke = ResetOffsetRequestHeader {
                topic: self.topic.clone(),
                group: self.group.clone(),
                timestamp: self.timestamp,
                is_force: true,
            };
            let resp = call_any(
                ctx,
                &m.addr,
                command(request::INVOKE_BROKER_TO_RESET_OFFSET, &invoke),
                ctx.timeout(),
                &what,
            )
            .await?;
            if resp.code == response::SUCCESS {
                let body = ResetOffsetBody::decode(&resp.body)
                    .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
                for (mq, new) in body.offset_table {
                    let old = olds.get(mq.queue_id as usize).copied().flatten();
                    rows.push((m.name.clone(), mq.queue_id, old, new));
                }
                continue;
            }
            if resp.code != response::REQUEST_CODE_NOT_SUPPORTED {
                return Err(refused(&what, &m.addr, &resp));
            }
            // A broker without it: set each queue's offset directly.
            told_consumers = false;
            for queue_id in 0..*queues {
                let old = olds.get(queue_id as usize).copied().flatten();
                let what = format!(
                    "search offset of {}:{queue_id} at {}",
                    m.name, self.timestamp
                );
                let search = SearchOffsetRequestHeader {
                    topic: self.topic.clone(),
                    queue_id,
                    timestamp: self.timestamp,
                };
                let resp = call(
                    ctx,
                    &m.addr,
                    command(request::SEARCH_OFFSET_BY_TIMESTAMP, &search),
                    &what,
                )
                .await?;
                let new = OffsetResponseHeader::decode(&resp.ext_fields)
                    .map_err(|e| failed(format!("{what}: bad answer: {e}")))?
                    .offset;
                let update = UpdateConsumerOffsetRequestHeader {
                    consumer_group: self.group.clone(),
                    topic: self.topic.clone(),
                    queue_id,
                    commit_offset: new,
                };
                let what = format!("update offset of {} on {}:{queue_id}", self.group, m.name);
                call(
                    ctx,
                    &m.addr,
                    command(request::UPDATE_CONSUMER_OFFSET, &update),
                    &what,
                )
                .await?;
                rows.push((m.name.clone(), queue_id, old, new));
            }
        }
        match self.format {
            Format::Json => ctx.console.json_line(&serde_json::json!({
                "group": self.group,
                "topic": self.topic,
                "timestamp": self.timestamp,
                "queues": rows.iter().map(|(b, q, old, new)| serde_json::json!({
                    "brokerName": b, "queueId": q, "oldOffset": old, "newOffset": new,
                })).collect::<Vec<_>>(),
                "consumersOnline": online,
            }))?,
            Format::Text => {
                let mut t = Table::new(&["BROKER", "QUEUE", "OLD OFFSET", "NEW OFFSET"]);
                for (b, q, old, new) in &rows {
                    t.row(vec![
                        b.clone(),
                        q.to_string(),
                        old.map_or_else(|| "-".into(), |o| o.to_string()),
                        new.to_string(),
                    ]);
                }
                t.print(ctx.console)?;
            }
        }
        if online > 0 && !told_consumers {
            ctx.console.warn(format!(
                "{online} consumer(s) of {} are online and may overwrite these offsets with their own \
                 (this broker cannot tell them to reset); stop them and reset again if they do",
                self.group
            ));
        }
        Ok(())
    }

    /// The group's committed offset of a queue, `None` if it has none.
    async fn committed(&self, ctx: &Ctx<'_>, addr: &str, queue_id: i32) -> Outcome<Option<i64>> {
        let what = format!("query offset of {} on queue {queue_id}", self.group);
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: self.topic.clone(),
            queue_id,
        };
        let resp = call_any(
            ctx,
            addr,
            command(request::QUERY_CONSUMER_OFFSET, &header),
            ctx.timeout(),
            &what,
        )
        .await?;
        match resp.code {
            response::SUCCESS => OffsetResponseHeader::decode(&resp.ext_fields)
                .map(|h| Some(h.offset))
                .map_err(|e| failed(format!("{what}: bad answer: {e}"))),
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(refused(&what, addr, &resp)),
        }
    }
}
