//! `mqctl broker stats`: each master's statistics for a person, from the same
//! GET_BROKER_RUNTIME_INFO that mqadmin's brokerStatus and clusterList read
//! (and, with `--topic`, VIEW_BROKER_STATS_DATA as mqadmin statsAll reads it):
//! message rates in and out, today's and yesterday's totals, append latency,
//! how old the oldest message is, disk use and requests in flight.

use std::collections::BTreeMap;

use argh::FromArgs;
use mq_protocol::body::{BrokerStatsData, KvTable};
use mq_protocol::codes::request;
use mq_protocol::headers::ViewBrokerStatsDataRequestHeader;

use crate::admin::{self, bare_command, call, command, Ctx, Master};
use crate::output::{failed, format_ms, Format, Outcome};

/// brokers: statistics
#[derive(FromArgs)]
#[argh(subcommand, name = "broker")]
pub struct BrokerCmd {
    #[argh(subcommand)]
    cmd: BrokerSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum BrokerSub {
    Stats(StatsCmd),
}

impl BrokerCmd {
    /// Runs the sub-verb.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match &self.cmd {
            BrokerSub::Stats(c) => c.run(ctx).await,
        }
    }
}

/// show each master's message rates, totals, latency, disk and load
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "stats",
    example = "{command_name}",
    example = "{command_name} --broker broker-a --topic TopicTest",
    example = "{command_name} --format json",
    note = "Rates are messages per second over the last 10 s, 1 min and 10 min. Exits 1 when a broker does not answer."
)]
pub struct StatsCmd {
    /// only this broker name
    #[argh(option, short = 'b')]
    broker: Option<String>,
    /// only the brokers of this cluster
    #[argh(option, short = 'c')]
    cluster: Option<String>,
    /// also this topic's messages in over the last minute, hour and day
    #[argh(option, short = 't')]
    topic: Option<String>,
    /// output format: text (default) or json (one object per broker a line)
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl StatsCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let info = admin::cluster_info(ctx).await?;
        let masters: Vec<Master> = admin::cluster_masters(&info, self.cluster.as_deref())?
            .into_iter()
            .filter(|m| self.broker.as_ref().is_none_or(|b| *b == m.name))
            .collect();
        if masters.is_empty() {
            return Err(failed(match &self.broker {
                Some(b) => format!("broker {b} is not registered with the NameServer"),
                None => "no broker is registered with the NameServer".to_owned(),
            }));
        }
        let mut unreachable = 0;
        for (i, m) in masters.iter().enumerate() {
            let what = format!("get runtime info of {} ({})", m.name, m.addr);
            let runtime = call(
                ctx,
                &m.addr,
                bare_command(request::GET_BROKER_RUNTIME_INFO),
                &what,
            )
            .await
            .and_then(|resp| {
                KvTable::decode(&resp.body).map_err(|e| failed(format!("{what}: bad answer: {e}")))
            });
            let table = match runtime {
                Ok(kv) => kv.table,
                Err(e) => {
                    unreachable += 1;
                    if let crate::output::Failure::Failed(msg) = &e {
                        ctx.console.warn(msg);
                    }
                    continue;
                }
            };
            let topic = match &self.topic {
                Some(t) => Some((t.as_str(), topic_stats(ctx, m, t).await?)),
                None => None,
            };
            match self.format {
                Format::Json => ctx.console.json_line(&serde_json::json!({
                    "brokerName": m.name,
                    "addr": m.addr,
                    "runtime": table,
                    "topic": topic.as_ref().map(|(t, s)| serde_json::json!({
                        "topic": t,
                        "statsMinute": s.map(|s| s.stats_minute.sum),
                        "tpsMinute": s.map(|s| s.stats_minute.tps),
                        "statsHour": s.map(|s| s.stats_hour.sum),
                        "statsDay": s.map(|s| s.stats_day.sum),
                    })),
                }))?,
                Format::Text => {
                    if i > 0 {
                        ctx.console.line("")?;
                    }
                    print_text(ctx, m, &table, topic)?;
                }
            }
        }
        if unreachable > 0 {
            return Err(failed(format!("{unreachable} broker(s) did not answer")));
        }
        Ok(())
    }
}

/// TOPIC_PUT_NUMS of `topic` on `m`; `None` when nothing was ever sent there.
async fn topic_stats(ctx: &Ctx<'_>, m: &Master, topic: &str) -> Outcome<Option<BrokerStatsData>> {
    let header = ViewBrokerStatsDataRequestHeader {
        stats_name: "TOPIC_PUT_NUMS".into(),
        stats_key: topic.to_owned(),
    };
    let what = format!("get stats of topic {topic} from {}", m.name);
    match call(
        ctx,
        &m.addr,
        command(request::VIEW_BROKER_STATS_DATA, &header),
        &what,
    )
    .await
    {
        Ok(resp) => BrokerStatsData::decode(&resp.body)
            .map(Some)
            .map_err(|e| failed(format!("{what}: bad answer: {e}"))),
        // The broker answers SYSTEM_ERROR for a statistic never counted.
        Err(_) => Ok(None),
    }
}

fn print_text(
    ctx: &Ctx<'_>,
    m: &Master,
    t: &BTreeMap<String, String>,
    topic: Option<(&str, Option<BrokerStatsData>)>,
) -> Outcome {
    let get = |k: &str| t.get(k).map_or("-", String::as_str);
    let int = |k: &str| t.get(k).and_then(|v| v.parse::<i64>().ok());
    let rates = |k: &str| {
        let r: Vec<String> = get(k)
            .split(' ')
            .map(|v| {
                v.parse::<f64>()
                    .map_or_else(|_| "-".into(), |v| format!("{v:.2}"))
            })
            .collect();
        r.join(" / ")
    };
    let since = |now: Option<i64>, morning: Option<i64>| match (now, morning) {
        (Some(n), Some(m)) => (n - m).to_string(),
        _ => "-".into(),
    };
    let c = ctx.console;
    c.line(format_args!(
        "{} ({}, {}, {}, up {})",
        m.name,
        m.addr,
        get("brokerRole"),
        get("brokerVersionDesc"),
        get("runtime").trim_matches(|ch| ch == '[' || ch == ']' || ch == ' ')
    ))?;
    c.line(format_args!(
        "  in  msgs/s (10 s / 1 min / 10 min):  {}",
        rates("putTps")
    ))?;
    c.line(format_args!(
        "  out msgs/s (10 s / 1 min / 10 min):  {}",
        rates("getTransferedTps")
    ))?;
    let (put_now, put_today, put_yesterday) = (
        int("msgPutTotalTodayNow"),
        int("msgPutTotalTodayMorning"),
        int("msgPutTotalYesterdayMorning"),
    );
    let (get_now, get_today, get_yesterday) = (
        int("msgGetTotalTodayNow"),
        int("msgGetTotalTodayMorning"),
        int("msgGetTotalYesterdayMorning"),
    );
    c.line(format_args!(
        "  messages in:  {} today, {} yesterday (UTC days)",
        since(put_now, put_today),
        since(put_today, put_yesterday)
    ))?;
    c.line(format_args!(
        "  messages out: {} today, {} yesterday",
        since(get_now, get_today),
        since(get_today, get_yesterday)
    ))?;
    c.line(format_args!(
        "  stored since start: {} messages, {} bytes (average {} B); failed appends: {}",
        get("putMessageTimesTotal"),
        get("putMessageSizeTotal"),
        t.get("putMessageAverageSize")
            .and_then(|v| v.parse::<f64>().ok())
            .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
        get("putMessageFailedTimes")
    ))?;
    c.line(format_args!(
        "  append latency (ms): p99 {}, p99.9 {} over the last minute; max {} since start",
        get("putLatency99"),
        get("putLatency999"),
        get("putMessageEntireTimeMax")
    ))?;
    let now = mq_protocol::time::now_ms();
    let earliest = int("earliestMessageTimeStamp").map_or_else(
        || "-".into(),
        |ms| {
            format!(
                "{} UTC ({:.2} h ago)",
                format_ms(ms),
                (now - ms).max(0) as f64 / 3_600_000.0
            )
        },
    );
    c.line(format_args!("  oldest message: {earliest}"))?;
    c.line(format_args!(
        "  disk used: {}; not yet flushed: {}; not yet dispatched: {} B",
        t.get("commitLogDiskRatio")
            .and_then(|v| v.parse::<f64>().ok())
            .map_or_else(|| "-".into(), |r| format!("{:.1} %", r * 100.0)),
        get("remainHowManyDataToFlush"),
        get("dispatchBehindBytes")
    ))?;
    c.line(format_args!(
        "  in flight: {} sends (oldest {} ms), {} pulls, {} pulls parked",
        get("sendThreadPoolQueueSize"),
        get("sendThreadPoolQueueHeadWaitTimeMills"),
        get("pullThreadPoolQueueSize"),
        get("pullHoldingRequests")
    ))?;
    if let Some((name, stats)) = topic {
        match stats {
            Some(s) => c.line(format_args!(
                "  topic {name}: {:.2} msgs/s in the last minute; {} messages in the last minute, {} in the last hour, {} in the last day",
                s.stats_minute.tps, s.stats_minute.sum, s.stats_hour.sum, s.stats_day.sum
            ))?,
            None => c.line(format_args!("  topic {name}: nothing sent here since start"))?,
        }
    }
    Ok(())
}
