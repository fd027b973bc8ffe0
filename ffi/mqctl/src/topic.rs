//! `mqctl topic create|delete|list|route|stats`: topics as the NameServer and
//! the brokers know them.

use std::time::{Duration, Instant};

use argh::FromArgs;
use mq_protocol::body::{TopicList, TopicStatsTable};
use mq_protocol::codes::request;
use mq_protocol::headers::{
    CreateTopicRequestHeader, GetTopicsByClusterRequestHeader, KvConfigRequestHeader,
    TopicRequestHeader,
};

use crate::admin::{self, call, call_namesrv, cluster_masters, command, Ctx, Master};
use crate::output::{failed, format_ms, usage, Failure, Format, Outcome, Table};

/// The template topic mqadmin names when creating topics.
const DEFAULT_TOPIC: &str = "TBW102";
/// How long `create` waits for the NameServer to show the new route.
const ROUTE_WAIT: Duration = Duration::from_secs(10);

/// manage topics: create, delete, list, route, stats
#[derive(FromArgs)]
#[argh(subcommand, name = "topic")]
pub struct TopicCmd {
    #[argh(subcommand)]
    cmd: TopicSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TopicSub {
    Create(CreateCmd),
    Delete(DeleteCmd),
    List(ListCmd),
    Route(RouteCmd),
    Stats(StatsCmd),
}

impl TopicCmd {
    /// Runs the sub-verb.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match &self.cmd {
            TopicSub::Create(c) => c.run(ctx).await,
            TopicSub::Delete(c) => c.run(ctx).await,
            TopicSub::List(c) => c.run(ctx).await,
            TopicSub::Route(c) => c.run(ctx).await,
            TopicSub::Stats(c) => c.run(ctx).await,
        }
    }
}

/// create or update a topic on every master of a cluster
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "create",
    example = "{command_name} --topic TopicTest",
    example = "{command_name} --topic Orders --queues 4 --order --cluster DefaultCluster",
    note = "Waits (up to 10 s) until the NameServer routes the topic to every broker it was created on."
)]
pub struct CreateCmd {
    /// topic name
    #[argh(option, short = 't')]
    topic: String,
    /// cluster whose masters get the topic (default DefaultCluster)
    #[argh(option, short = 'c', default = "String::from(\"DefaultCluster\")")]
    cluster: String,
    /// read and write queues per broker (default 8)
    #[argh(option, default = "8")]
    queues: i32,
    /// permission: 2 write only, 4 read only, 6 read and write (default 6)
    #[argh(option, default = "6")]
    perm: i32,
    /// ordered topic (also written to the NameServers' ORDER_TOPIC_CONFIG)
    #[argh(switch)]
    order: bool,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl CreateCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_topic(&self.topic)?;
        if !(1..=1024).contains(&self.queues) {
            return Err(usage("--queues must be 1..1024"));
        }
        if ![2, 4, 6].contains(&self.perm) {
            return Err(usage(
                "--perm must be 2 (write), 4 (read) or 6 (read and write)",
            ));
        }
        let info = admin::cluster_info(ctx).await?;
        let masters = cluster_masters(&info, Some(&self.cluster))?;
        if masters.is_empty() {
            return Err(failed(format!("cluster {} has no master", self.cluster)));
        }
        for m in &masters {
            let header = CreateTopicRequestHeader {
                topic: self.topic.clone(),
                default_topic: DEFAULT_TOPIC.into(),
                read_queue_nums: self.queues,
                write_queue_nums: self.queues,
                perm: self.perm,
                topic_filter_type: "SINGLE_TAG".into(),
                topic_sys_flag: Some(0),
                order: Some(self.order),
            };
            let what = format!("create topic {} on {}", self.topic, m.name);
            call(
                ctx,
                &m.addr,
                command(request::UPDATE_AND_CREATE_TOPIC, &header),
                &what,
            )
            .await?;
            if self.format == Format::Text {
                ctx.console.line(format_args!(
                    "created topic {} on {} ({}): {} queues, perm {}{}",
                    self.topic,
                    m.name,
                    m.addr,
                    self.queues,
                    self.perm,
                    if self.order { ", ordered" } else { "" }
                ))?;
            }
        }
        if self.order {
            self.put_order_conf(ctx, &masters).await?;
        }
        let routed = self.wait_for_route(ctx, &masters).await;
        if !routed {
            ctx.console.warn(format!(
                "the NameServer does not route {} to every broker yet; it will once they register",
                self.topic
            ));
        }
        if self.format == Format::Json {
            ctx.console.json_line(&serde_json::json!({
                "topic": self.topic,
                "queues": self.queues,
                "perm": self.perm,
                "order": self.order,
                "brokers": masters.iter().map(|m| serde_json::json!({"brokerName": m.name, "addr": m.addr})).collect::<Vec<_>>(),
                "routed": routed,
            }))?;
        }
        Ok(())
    }

    /// As mqadmin does for ordered topics: `brokerName:queues;…` in every
    /// NameServer's ORDER_TOPIC_CONFIG namespace.
    async fn put_order_conf(&self, ctx: &Ctx<'_>, masters: &[Master]) -> Outcome {
        let conf: Vec<String> = masters
            .iter()
            .map(|m| format!("{}:{}", m.name, self.queues))
            .collect();
        let header = KvConfigRequestHeader {
            namespace: "ORDER_TOPIC_CONFIG".into(),
            key: Some(self.topic.clone()),
            value: Some(conf.join(";")),
        };
        for addr in &ctx.instance.config().namesrv_addrs {
            let what = format!("put order config of {} on NameServer {addr}", self.topic);
            call(ctx, addr, command(request::PUT_KV_CONFIG, &header), &what).await?;
        }
        Ok(())
    }

    async fn wait_for_route(&self, ctx: &Ctx<'_>, masters: &[Master]) -> bool {
        let deadline = Instant::now() + ROUTE_WAIT;
        loop {
            if let Ok(route) = ctx.instance.fetch_route(&self.topic).await {
                let all = masters.iter().all(|m| {
                    route.queue_datas.iter().any(|q| {
                        q.broker_name == m.name
                            && q.read_queue_nums == self.queues
                            && q.write_queue_nums == self.queues
                            && q.perm == self.perm
                    })
                });
                if all {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            async_io::Timer::after(Duration::from_millis(100)).await;
        }
    }
}

/// delete a topic from its masters and from every NameServer
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "delete",
    example = "{command_name} --topic TopicTest"
)]
pub struct DeleteCmd {
    /// topic name
    #[argh(option, short = 't')]
    topic: String,
    /// cluster to delete it from (default DefaultCluster)
    #[argh(option, short = 'c', default = "String::from(\"DefaultCluster\")")]
    cluster: String,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl DeleteCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_topic(&self.topic)?;
        let info = admin::cluster_info(ctx).await?;
        let in_cluster = cluster_masters(&info, Some(&self.cluster))?;
        // The masters that have it; without a route, every master of the cluster
        // (a broker may hold a topic the NameServer no longer routes).
        let masters: Vec<Master> = match ctx.instance.fetch_route(&self.topic).await {
            Ok(route) => admin::route_masters(ctx.console, &route)
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| in_cluster.contains(m))
                .collect(),
            Err(mq::ClientError::NoRoute(_)) => in_cluster,
            Err(e) => return Err(failed(format!("get route of {}: {e}", self.topic))),
        };
        let mut deleted = Vec::new();
        for m in &masters {
            let header = TopicRequestHeader {
                topic: self.topic.clone(),
                cluster_name: None,
            };
            let what = format!("delete topic {} on {}", self.topic, m.name);
            call(
                ctx,
                &m.addr,
                command(request::DELETE_TOPIC_IN_BROKER, &header),
                &what,
            )
            .await?;
            if self.format == Format::Text {
                ctx.console.line(format_args!(
                    "deleted topic {} on broker {} ({})",
                    self.topic, m.name, m.addr
                ))?;
            }
            deleted.push(serde_json::json!({"brokerName": m.name, "addr": m.addr}));
        }
        let mut namesrvs = Vec::new();
        for addr in &ctx.instance.config().namesrv_addrs {
            let header = TopicRequestHeader {
                topic: self.topic.clone(),
                cluster_name: Some(self.cluster.clone()),
            };
            let what = format!("delete topic {} on NameServer {addr}", self.topic);
            call(
                ctx,
                addr,
                command(request::DELETE_TOPIC_IN_NAMESRV, &header),
                &what,
            )
            .await?;
            if self.format == Format::Text {
                ctx.console.line(format_args!(
                    "deleted topic {} on NameServer {addr}",
                    self.topic
                ))?;
            }
            namesrvs.push(addr.clone());
        }
        if self.format == Format::Json {
            ctx.console.json_line(&serde_json::json!({
                "topic": self.topic, "brokers": deleted, "namesrvs": namesrvs,
            }))?;
        }
        Ok(())
    }
}

/// list the topics the NameServer knows
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "list",
    example = "{command_name}",
    example = "{command_name} --cluster DefaultCluster --format json"
)]
pub struct ListCmd {
    /// only the topics of this cluster
    #[argh(option, short = 'c')]
    cluster: Option<String>,
    /// output format: text (default, one topic a line) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl ListCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let cmd = match &self.cluster {
            Some(cluster) => command(
                request::GET_TOPICS_BY_CLUSTER,
                &GetTopicsByClusterRequestHeader {
                    cluster: cluster.clone(),
                },
            ),
            None => admin::bare_command(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
        };
        let what = "list topics";
        let resp = call_namesrv(ctx, cmd, what).await?;
        let list = TopicList::decode(&resp.body)
            .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
        match self.format {
            Format::Text => {
                for topic in &list.topic_list {
                    ctx.console.line(topic)?;
                }
                Ok(())
            }
            Format::Json => ctx
                .console
                .json_line(&serde_json::json!({ "topics": list.topic_list })),
        }
    }
}

/// show a topic's route: its brokers and queues
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "route",
    example = "{command_name} --topic TopicTest"
)]
pub struct RouteCmd {
    /// topic name
    #[argh(option, short = 't')]
    topic: String,
    /// output format: text (default) or json (the route data)
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl RouteCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_topic(&self.topic)?;
        let route = admin::route(ctx, &self.topic).await?;
        if self.format == Format::Json {
            let value = serde_json::to_value(&route)
                .map_err(|e| failed(format!("cannot encode the route: {e}")))?;
            return ctx.console.json_line(&value);
        }
        ctx.console.line(format_args!("topic {}", self.topic))?;
        let mut brokers = Table::new(&["BROKER", "CLUSTER", "ID", "ADDRESS"]);
        let mut datas = route.broker_datas.clone();
        datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        for b in &datas {
            for (id, addr) in &b.broker_addrs {
                brokers.row(vec![
                    b.broker_name.clone(),
                    b.cluster.clone(),
                    id.to_string(),
                    addr.clone(),
                ]);
            }
        }
        brokers.print(ctx.console)?;
        ctx.console.line("")?;
        let mut queues = Table::new(&["BROKER", "READ", "WRITE", "PERM", "SYSFLAG"]);
        let mut qds = route.queue_datas.clone();
        qds.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        for q in &qds {
            queues.row(vec![
                q.broker_name.clone(),
                q.read_queue_nums.to_string(),
                q.write_queue_nums.to_string(),
                perm_name(q.perm),
                q.topic_sys_flag.to_string(),
            ]);
        }
        queues.print(ctx.console)?;
        if let Some(conf) = &route.order_topic_conf {
            ctx.console.line(format_args!("\norder config: {conf}"))?;
        }
        Ok(())
    }
}

/// `6 (RW)` style.
fn perm_name(perm: i32) -> String {
    let mut s = String::new();
    if perm & 4 != 0 {
        s.push('R');
    }
    if perm & 2 != 0 {
        s.push('W');
    }
    if perm & 1 != 0 {
        s.push('X');
    }
    format!("{perm} ({})", if s.is_empty() { "-" } else { &s })
}

/// show min and max offset and last update time of every queue of a topic
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "stats",
    example = "{command_name} --topic TopicTest"
)]
pub struct StatsCmd {
    /// topic name
    #[argh(option, short = 't')]
    topic: String,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl StatsCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_topic(&self.topic)?;
        let route = admin::route(ctx, &self.topic).await?;
        let mut rows = Vec::new();
        for (m, _) in admin::route_masters(ctx.console, &route) {
            let header = TopicRequestHeader {
                topic: self.topic.clone(),
                cluster_name: None,
            };
            let what = format!("get stats of {} from {}", self.topic, m.name);
            let resp = call(
                ctx,
                &m.addr,
                command(request::GET_TOPIC_STATS_INFO, &header),
                &what,
            )
            .await?;
            let stats = TopicStatsTable::decode(&resp.body)
                .map_err(|e| failed(format!("{what}: bad answer: {e}")))?;
            rows.extend(stats.offset_table);
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = rows
            .iter()
            .map(|(_, o)| (o.max_offset - o.min_offset).max(0))
            .sum();
        match self.format {
            Format::Json => ctx.console.json_line(&serde_json::json!({
                "topic": self.topic,
                "queues": rows.iter().map(|(q, o)| serde_json::json!({
                    "brokerName": q.broker_name,
                    "queueId": q.queue_id,
                    "minOffset": o.min_offset,
                    "maxOffset": o.max_offset,
                    "lastUpdateTimestamp": o.last_update_timestamp,
                })).collect::<Vec<_>>(),
                "messages": total,
            })),
            Format::Text => {
                let mut t = Table::new(&["BROKER", "QUEUE", "MIN", "MAX", "LAST UPDATE (UTC)"]);
                for (q, o) in &rows {
                    t.row(vec![
                        q.broker_name.clone(),
                        q.queue_id.to_string(),
                        o.min_offset.to_string(),
                        o.max_offset.to_string(),
                        format_ms(o.last_update_timestamp),
                    ]);
                }
                t.print(ctx.console)?;
                ctx.console.line(format_args!("messages stored: {total}"))
            }
        }
    }
}

/// Topic names as the broker accepts them.
fn check_topic(topic: &str) -> Result<(), Failure> {
    if topic.is_empty() || topic.len() > 127 {
        return Err(usage("the topic must be 1..127 characters"));
    }
    if !topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '%' | '|'))
    {
        return Err(usage(format!(
            "topic {topic:?}: only letters, digits, '-', '_', '%' and '|' are allowed"
        )));
    }
    Ok(())
}
