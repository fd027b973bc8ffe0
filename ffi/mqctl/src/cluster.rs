//! `mqctl cluster`: every broker of every cluster (GET_BROKER_CLUSTER_INFO),
//! with version and today's put/get totals from each broker's runtime info,
//! like mqadmin's clusterList, and for each slave how far behind its master
//! it is (the bytes between the two CommitLog ends) and whether it is linked
//! to its master at all (a slave that has not linked yet is 0 bytes behind
//! an empty master, and its master answers SLAVE_NOT_AVAILABLE).

use argh::FromArgs;
use mq_protocol::body::KvTable;
use mq_protocol::codes::request;

use crate::admin::{self, bare_command, call, Ctx};
use crate::output::{failed, Format, Outcome, Table};

/// list the brokers of every cluster with their version, message totals, role,
/// and how many bytes each slave is behind its master
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "cluster",
    example = "{command_name}",
    example = "{command_name} --cluster DefaultCluster --format json",
    note = "Exits 1 (after printing the table) when a broker does not answer."
)]
pub struct ClusterCmd {
    /// only this cluster
    #[argh(option, short = 'c')]
    cluster: Option<String>,
    /// output format: text (default) or json (one object per broker a line)
    #[argh(option, default = "Format::Text")]
    format: Format,
}

impl ClusterCmd {
    /// Lists the brokers.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let info = admin::cluster_info(ctx).await?;
        if let Some(c) = &self.cluster {
            // Only for its error on an unknown cluster.
            admin::cluster_masters(&info, Some(c))?;
        }
        let mut table = Table::new(&[
            "CLUSTER",
            "BROKER",
            "ID",
            "ADDRESS",
            "VERSION",
            "PUT TODAY",
            "GET TODAY",
            "ROLE",
            "BEHIND",
        ]);
        let mut unreachable = 0;
        for (cluster, names) in &info.cluster_addr_table {
            if self.cluster.as_ref().is_some_and(|c| c != cluster) {
                continue;
            }
            for name in names {
                let Some(broker) = info.broker_addr_table.get(name) else {
                    continue;
                };
                // Ids in order: the master (0) comes first, its end measures the slaves.
                let mut master_end: Option<i64> = None;
                for (id, addr) in &broker.broker_addrs {
                    let what = format!("get runtime info of {name} ({addr})");
                    let runtime = match call(
                        ctx,
                        addr,
                        bare_command(request::GET_BROKER_RUNTIME_INFO),
                        &what,
                    )
                    .await
                    .and_then(|resp| {
                        KvTable::decode(&resp.body)
                            .map_err(|e| failed(format!("{what}: bad answer: {e}")))
                    }) {
                        Ok(kv) => Some(kv.table),
                        Err(e) => {
                            unreachable += 1;
                            if let crate::output::Failure::Failed(msg) = &e {
                                ctx.console.warn(msg);
                            }
                            None
                        }
                    };
                    let get = |k: &str| {
                        runtime
                            .as_ref()
                            .and_then(|t| t.get(k).cloned())
                            .unwrap_or_else(|| "-".into())
                    };
                    let end = runtime
                        .as_ref()
                        .and_then(|t| t.get("commitLogMaxOffset"))
                        .and_then(|v| v.parse::<i64>().ok());
                    let behind = if *id == 0 {
                        master_end = end;
                        None
                    } else {
                        master_end.zip(end).map(|(m, s)| (m - s).max(0))
                    };
                    // Only slaves say; Apache's name for it.
                    let linked = (*id != 0)
                        .then(|| runtime.as_ref().and_then(|t| t.get("haConnected")))
                        .flatten()
                        .map(|c| c == "true");
                    let behind_cell = match (behind, linked) {
                        (None, _) => "-".into(),
                        (Some(b), Some(false)) => format!("{b} (not linked)"),
                        (Some(b), _) => b.to_string(),
                    };
                    match self.format {
                        Format::Text => table.row(vec![
                            cluster.clone(),
                            name.clone(),
                            id.to_string(),
                            addr.clone(),
                            get("brokerVersionDesc"),
                            get("msgPutTotalTodayNow"),
                            get("msgGetTotalTodayNow"),
                            get("brokerRole"),
                            behind_cell,
                        ]),
                        Format::Json => ctx.console.json_line(&serde_json::json!({
                            "cluster": cluster,
                            "brokerName": name,
                            "brokerId": id,
                            "addr": addr,
                            "online": runtime.is_some(),
                            "version": runtime.as_ref().and_then(|t| t.get("brokerVersionDesc")),
                            "msgPutTotalTodayNow": runtime.as_ref().and_then(|t| t.get("msgPutTotalTodayNow")).and_then(|v| v.parse::<i64>().ok()),
                            "msgGetTotalTodayNow": runtime.as_ref().and_then(|t| t.get("msgGetTotalTodayNow")).and_then(|v| v.parse::<i64>().ok()),
                            "role": runtime.as_ref().and_then(|t| t.get("brokerRole")),
                            "commitLogMaxOffset": end,
                            "behindBytes": behind,
                            "linked": linked,
                        }))?,
                    }
                }
            }
        }
        if self.format == Format::Text {
            table.print(ctx.console)?;
        }
        if unreachable > 0 {
            return Err(failed(format!("{unreachable} broker(s) did not answer")));
        }
        Ok(())
    }
}
