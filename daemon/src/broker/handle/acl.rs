//! The ACL admin codes of 4.9.7's mqadmin: UPDATE_AND_CREATE_ACL_CONFIG
//! (`updateAclConfig`), DELETE_ACL_CONFIG (`deleteAclConfig`),
//! UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (`updateGlobalWhiteAddr`),
//! GET_BROKER_CLUSTER_ACL_INFO (`clusterAclConfigVersion`) and
//! GET_BROKER_CLUSTER_ACL_CONFIG (`getAclConfig`). Changes are written to
//! the accounts file ([`crate::acl`]) and take effect at once.
//!
//! Who may call them is decided before dispatch: with ACL on, all but
//! GET_BROKER_CLUSTER_ACL_INFO need an admin account (mq's addition; 4.9.7
//! lets any account change the ACL and read every secret). With ACL off
//! they fail with their FAILED code, as 4.9.7's would.

use std::sync::Arc;

use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use serde_json::json;

use super::{ok, ok_body, Reply};
use crate::acl::{AccountUpdate, Acl};
use crate::broker::Broker;
use crate::server::error_response;

/// The broker's ACL, or the failure answer when ACL is off.
fn acl_or(
    broker: &Broker,
    req: &RemotingCommand,
    failed: i32,
) -> Result<Arc<Acl>, RemotingCommand> {
    broker.acl.clone().ok_or_else(|| {
        error_response(
            req,
            failed,
            "ACL is not enabled on this broker (aclEnable=false)",
        )
    })
}

/// Java's `UtilAll.split(text, ",")`: `None` for a missing field.
fn split_list(text: Option<&str>) -> Option<Vec<String>> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// UPDATE_AND_CREATE_ACL_CONFIG: creates or changes an account.
pub(crate) async fn update_and_create_acl_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    let failed = response::UPDATE_AND_CREATE_ACL_CONFIG_FAILED;
    let acl = match acl_or(broker, req, failed) {
        Ok(acl) => acl,
        Err(answer) => return Ok(answer),
    };
    let Some(access_key) = req.get("accessKey") else {
        return Ok(error_response(
            req,
            failed,
            "the custom field <accessKey> is null",
        ));
    };
    let update = AccountUpdate {
        access_key: access_key.to_owned(),
        secret_key: req.get("secretKey").map(str::to_owned),
        white_remote_address: req.get("whiteRemoteAddress").map(str::to_owned),
        admin: req.get("admin").is_some_and(|a| a.trim() == "true"),
        default_topic_perm: req.get("defaultTopicPerm").map(str::to_owned),
        default_group_perm: req.get("defaultGroupPerm").map(str::to_owned),
        topic_perms: split_list(req.get("topicPerms")),
        group_perms: split_list(req.get("groupPerms")),
    };
    let outcome = blocking::unblock(move || acl.update_account(&update)).await;
    Ok(match outcome {
        Ok(()) => ok(req),
        Err(why) => {
            log::warn!("updating ACL account {access_key} failed: {why}");
            error_response(req, failed, why)
        }
    })
}

/// DELETE_ACL_CONFIG: deletes an account.
pub(crate) async fn delete_acl_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    let failed = response::DELETE_ACL_CONFIG_FAILED;
    let acl = match acl_or(broker, req, failed) {
        Ok(acl) => acl,
        Err(answer) => return Ok(answer),
    };
    let access_key = req.get("accessKey").unwrap_or("").to_owned();
    let key = access_key.clone();
    let outcome = blocking::unblock(move || acl.delete_account(&key)).await;
    Ok(match outcome {
        Ok(true) => ok(req),
        Ok(false) => error_response(
            req,
            failed,
            format!("The accesskey[{access_key}] corresponding to accessConfig has been deleted failed."),
        ),
        Err(why) => error_response(req, failed, why),
    })
}

/// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: replaces the global whitelist of the
/// accounts file, or of `aclFileFullPath` when given, which must be one of
/// the files the broker reads.
pub(crate) async fn update_global_white_addrs_config(
    broker: &Broker,
    req: &RemotingCommand,
) -> Reply {
    let failed = response::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED;
    let acl = match acl_or(broker, req, failed) {
        Ok(acl) => acl,
        Err(answer) => return Ok(answer),
    };
    let Some(addrs) = split_list(req.get("globalWhiteAddrs")) else {
        return Ok(error_response(
            req,
            failed,
            "the custom field <globalWhiteAddrs> is null",
        ));
    };
    // 4.9.7 takes any ACL file by its full path; mq only the files it reads.
    let file = req
        .get("aclFileFullPath")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let outcome = blocking::unblock(move || acl.update_global_white(&addrs, file.as_deref())).await;
    Ok(match outcome {
        Ok(()) => ok(req),
        Err(why) => error_response(req, failed, why),
    })
}

fn data_version_json(v: crate::acl::accounts::DataVersion) -> serde_json::Value {
    json!({"counter": v.counter, "stateVersion": 0, "timestamp": v.timestamp})
}

/// GET_BROKER_CLUSTER_ACL_INFO: the file's data version, and who answers.
pub(crate) fn get_broker_cluster_acl_info(broker: &Broker, req: &RemotingCommand) -> Reply {
    let acl = match acl_or(broker, req, response::SYSTEM_ERROR) {
        Ok(acl) => acl,
        Err(refused) => return Ok(refused),
    };
    let file = acl.snapshot();
    let version = data_version_json(file.data_version);
    let all: serde_json::Map<String, serde_json::Value> = file
        .versions
        .iter()
        .map(|(path, v)| (path.display().to_string(), data_version_json(*v)))
        .collect();
    let config = broker.config();
    let mut resp = ok(req);
    resp.put("version", version.to_string())
        .put(
            "allAclFileVersion",
            serde_json::Value::Object(all).to_string(),
        )
        .put("brokerName", &config.broker_name)
        .put("brokerAddr", config.broker_addr())
        .put("clusterName", &config.cluster_name);
    Ok(resp)
}

/// GET_BROKER_CLUSTER_ACL_CONFIG: every account (secrets included, hence
/// admin only) and the global whitelist.
pub(crate) fn get_broker_cluster_acl_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    let acl = match acl_or(broker, req, response::SYSTEM_ERROR) {
        Ok(acl) => acl,
        Err(refused) => return Ok(refused),
    };
    let file = acl.snapshot();
    let accounts: Vec<serde_json::Value> = file
        .order
        .iter()
        .filter_map(|k| file.accounts.get(k))
        .map(|a| {
            let mut m = serde_json::Map::new();
            m.insert("accessKey".into(), json!(a.access_key));
            m.insert("secretKey".into(), json!(a.secret_key));
            m.insert("admin".into(), json!(a.admin));
            if let Some(w) = &a.white_remote_address {
                m.insert("whiteRemoteAddress".into(), json!(w));
            }
            if let Some(p) = &a.default_topic_perm {
                m.insert("defaultTopicPerm".into(), json!(p));
            }
            if let Some(p) = &a.default_group_perm {
                m.insert("defaultGroupPerm".into(), json!(p));
            }
            m.insert("topicPerms".into(), json!(a.topic_perms));
            m.insert("groupPerms".into(), json!(a.group_perms));
            serde_json::Value::Object(m)
        })
        .collect();
    let body = json!({
        "globalWhiteAddrs": file.global_white_text,
        "plainAccessConfigs": accounts,
    });
    Ok(ok_body(req, body.to_string().into_bytes()))
}
