//! `mqctl query`: finds messages by key (QUERY_MESSAGE to every master of the
//! topic), by the broker's offset id (VIEW_MESSAGE_BY_ID to the broker the id
//! names) or by the client's unique id (QUERY_MESSAGE with
//! `_UNIQUE_KEY_QUERY=true`).

use std::collections::BTreeSet;
use std::time::Duration;

use argh::FromArgs;
use mq::message::decode_messages;
use mq::MessageExt;
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{QueryMessageRequestHeader, ViewMessageRequestHeader};
use mq_protocol::message::decode_offset_msg_id;

use crate::admin::{self, call_any, command, refused, Ctx};
use crate::output::{
    failed, message_detail, message_json, now_ms, usage, Failure, Format, Outcome,
};

/// Queries read an index and may take longer than other admin requests.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// find messages by key or by message id
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "query",
    example = "{command_name} --topic TopicTest --key order-42",
    example = "{command_name} --id 7F00000100002A9F0000000000000D2E",
    example = "{command_name} --topic TopicTest --id 7F000001E3D1A1B2C3D4006B2C9B0001",
    note = "--id takes the broker's offset id (32 or 56 hex characters; the broker is found from it) or the client's unique id (needs --topic). Exits 1 when nothing is found."
)]
pub struct QueryCmd {
    /// message key to look for (needs --topic)
    #[argh(option, short = 'k')]
    key: Option<String>,
    /// message id: offset id, or unique id with --topic
    #[argh(option, short = 'i')]
    id: Option<String>,
    /// topic
    #[argh(option, short = 't')]
    topic: Option<String>,
    /// with --key: earliest store time in ms (default 0)
    #[argh(option, default = "0")]
    begin: i64,
    /// with --key: latest store time in ms (default now)
    #[argh(option)]
    end: Option<i64>,
    /// with --key: most messages per broker (default 64)
    #[argh(option, default = "64")]
    max: i32,
    /// output format: text (default) or json (one object per message a line)
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl QueryCmd {
    /// Runs the query.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let found = match (&self.key, &self.id) {
            (Some(_), Some(_)) => return Err(usage("give --key or --id, not both")),
            (None, None) => return Err(usage("give --key (with --topic) or --id")),
            (Some(key), None) => {
                let topic = self
                    .topic
                    .as_deref()
                    .ok_or_else(|| usage("--key needs --topic"))?;
                if self.max < 1 {
                    return Err(usage("--max must be at least 1"));
                }
                let end = self.end.unwrap_or_else(now_ms);
                let found = self.by_key(ctx, topic, key, false, self.begin, end).await?;
                if found.is_empty() {
                    return Err(failed(format!(
                        "no message with key {key} in topic {topic}"
                    )));
                }
                found
            }
            (None, Some(id)) => self.by_id(ctx, id).await?,
        };
        for (i, m) in found.iter().enumerate() {
            match self.format {
                Format::Json => ctx.console.json_line(&message_json(m))?,
                Format::Text => {
                    if i > 0 {
                        ctx.console.line("")?;
                    }
                    ctx.console.line(message_detail(m))?;
                }
            }
        }
        Ok(())
    }

    async fn by_id(&self, ctx: &Ctx<'_>, id: &str) -> Outcome<Vec<MessageExt>> {
        let offset_id = offset_msg_id(id);
        // As Java's admin tool: the unique id first (it needs the topic), then
        // the offset id.
        if let Some(topic) = &self.topic {
            let found = self.by_key(ctx, topic, id, true, 0, i64::MAX).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            if offset_id.is_none() {
                return Err(failed(format!(
                    "no message with unique id {id} in topic {topic}"
                )));
            }
        }
        let Some((host, offset)) = offset_id else {
            return Err(usage(format!(
                "{id} is not an offset message id (32 or 56 hex characters); a unique id needs --topic"
            )));
        };
        let addr = host.to_string();
        let what = if self.topic.is_none() {
            format!("view message {id} on {addr} (for a unique id, give --topic)")
        } else {
            format!("view message {id} on {addr}")
        };
        let resp = call_any(
            ctx,
            &addr,
            command(
                request::VIEW_MESSAGE_BY_ID,
                &ViewMessageRequestHeader { offset },
            ),
            QUERY_TIMEOUT,
            &what,
        )
        .await?;
        if resp.code != response::SUCCESS {
            return Err(refused(&what, &addr, &resp));
        }
        let name = broker_name_of(ctx, &addr)
            .await
            .unwrap_or_else(|| addr.clone());
        let messages = decode_messages(&resp.body, &name)
            .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
        if messages.is_empty() {
            return Err(failed(format!("{what}: the broker sent no message")));
        }
        Ok(messages)
    }

    /// QUERY_MESSAGE on every master of the topic, keeping the messages that
    /// really carry `key` (the index is a hash table, so others can come back).
    async fn by_key(
        &self,
        ctx: &Ctx<'_>,
        topic: &str,
        key: &str,
        unique: bool,
        begin: i64,
        end: i64,
    ) -> Outcome<Vec<MessageExt>> {
        let route = admin::route(ctx, topic).await?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (m, _) in admin::route_masters(ctx.console, &route) {
            let header = QueryMessageRequestHeader {
                topic: topic.to_owned(),
                key: key.to_owned(),
                max_num: if unique { 32 } else { self.max },
                begin_timestamp: begin,
                end_timestamp: end,
            };
            let mut cmd = command(request::QUERY_MESSAGE, &header);
            if unique {
                cmd.put("_UNIQUE_KEY_QUERY", "true");
            }
            let what = format!("query {topic} by key {key} on {}", m.name);
            let resp = match call_any(ctx, &m.addr, cmd, QUERY_TIMEOUT, &what).await {
                Ok(resp) => resp,
                Err(Failure::Failed(e)) => {
                    // The other masters may still have it.
                    ctx.console.warn(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.code {
                response::SUCCESS => {}
                response::QUERY_NOT_FOUND => continue,
                _ => return Err(refused(&what, &m.addr, &resp)),
            }
            let messages = decode_messages(&resp.body, &m.name)
                .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
            for msg in messages {
                let matches = if unique {
                    msg.msg_id == key
                } else {
                    msg.keys().contains(&key)
                };
                if matches && seen.insert(msg.offset_msg_id.clone()) {
                    out.push(msg);
                }
            }
        }
        out.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
        Ok(out)
    }
}

/// An offset message id's broker address and CommitLog offset. Unique ids
/// have the same length, so the port field must also be a port: a unique id
/// holds the producer's pid and a random number there.
fn offset_msg_id(id: &str) -> Option<(std::net::SocketAddr, i64)> {
    let port_at = match id.len() {
        32 => 8,
        56 => 32,
        _ => return None,
    };
    let port = u32::from_str_radix(id.get(port_at..port_at + 8)?, 16).ok()?;
    if port == 0 || port > u32::from(u16::MAX) {
        return None;
    }
    decode_offset_msg_id(id)
}

/// The broker name registered for `addr`, if the NameServer knows it.
async fn broker_name_of(ctx: &Ctx<'_>, addr: &str) -> Option<String> {
    let info = admin::cluster_info(ctx).await.ok()?;
    info.broker_addr_table
        .values()
        .find(|b| b.broker_addrs.values().any(|a| a == addr))
        .map(|b| b.broker_name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_not_taken_for_offset_ids() {
        let (host, offset) = offset_msg_id("7F000001000051AF00000000000000C1").unwrap();
        assert_eq!(host.to_string(), "127.0.0.1:20911");
        assert_eq!(offset, 0xC1);
        assert!(offset_msg_id("7F000001348A4F6646A040E220C20000").is_none());
        assert!(offset_msg_id("XYZ").is_none());
    }
}
