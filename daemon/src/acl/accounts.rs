//! The accounts file, `plain_acl.yml`, read as 4.9.7 reads it:
//!
//! ```yaml
//! globalWhiteRemoteAddresses:      # addresses let in without keys
//!   - 10.10.103.*
//! accounts:
//!   - accessKey: RocketMQ          # more than 6 characters
//!     secretKey: 12345678          # more than 6 characters
//!     whiteRemoteAddress:          # this account's addresses, let in unsigned
//!     admin: false                 # may create and delete topics and groups
//!     defaultTopicPerm: DENY       # DENY (also when missing), PUB, SUB, PUB|SUB
//!     defaultGroupPerm: SUB
//!     topicPerms: [topicA=DENY, topicB=PUB|SUB]
//!     groupPerms: [groupA=DENY, groupB=PUB|SUB]
//! dataVersion:                     # written by the admin codes
//!   - counter: 1
//!     timestamp: 1700000000000
//! ```
//!
//! Scalars are read as text whatever YAML makes of them (`secretKey:
//! 12345678` is a number to YAML and a key here), as 4.9.7's JSON
//! conversion does. Any entry 4.9.7 would refuse (a short key, a bad
//! `Res=Perm` item, a bad address pattern) makes the whole file an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::address::AddressPattern;
use super::permission::Perm;
use mq_protocol::acl::SigningKey;
use mq_protocol::topics::retry_topic;

/// Keys and secrets must be longer than this (4.9.7's `ACCESS_KEY_MIN_LENGTH`).
pub(crate) const KEY_MIN_LENGTH: usize = 6;

/// An account's [`SigningKey`]. Two are equal when their accounts' secrets
/// are, which the account's own equality compares.
#[derive(Debug, Clone)]
pub(crate) struct ReadyKey(pub SigningKey);

impl PartialEq for ReadyKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ReadyKey {}

/// One account, as written in the file and as parsed for checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// `accessKey`.
    pub access_key: String,
    /// `secretKey`; never logged.
    pub secret_key: String,
    /// `whiteRemoteAddress`, as written.
    pub white_remote_address: Option<String>,
    /// `admin`.
    pub admin: bool,
    /// `defaultTopicPerm`, as written.
    pub default_topic_perm: Option<String>,
    /// `defaultGroupPerm`, as written.
    pub default_group_perm: Option<String>,
    /// `topicPerms`, as written (`topic=PERM`).
    pub topic_perms: Vec<String>,
    /// `groupPerms`, as written (`group=PERM`).
    pub group_perms: Vec<String>,
    /// The whitelist, parsed.
    pub white: AddressPattern,
    /// `secretKey` made ready to check signatures with.
    pub key: ReadyKey,
    /// Permissions by resource: topics by name, groups by retry topic, as
    /// 4.9.7 keys them.
    pub resources: HashMap<String, Perm>,
}

impl Account {
    /// The permission on a topic or a group that no `topicPerms` or
    /// `groupPerms` entry names.
    pub(crate) fn default_perm(&self, is_group: bool) -> Perm {
        if is_group {
            Perm::parse(self.default_group_perm.as_deref())
        } else {
            Perm::parse(self.default_topic_perm.as_deref())
        }
    }

    /// Builds an account from its fields, checking them as 4.9.7's
    /// `buildPlainAccessResource` does.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        access_key: String,
        secret_key: String,
        white_remote_address: Option<String>,
        admin: bool,
        default_topic_perm: Option<String>,
        default_group_perm: Option<String>,
        topic_perms: Vec<String>,
        group_perms: Vec<String>,
    ) -> Result<Account, String> {
        if access_key.chars().count() <= KEY_MIN_LENGTH
            || secret_key.chars().count() <= KEY_MIN_LENGTH
        {
            return Err(format!(
                "The accessKey={access_key} and its secretKey cannot be null and length should longer than {KEY_MIN_LENGTH}"
            ));
        }
        let mut resources = HashMap::new();
        for (is_topic, items) in [(false, &group_perms), (true, &topic_perms)] {
            for item in items {
                let (name, perm) = split_resource(item).ok_or_else(|| {
                    format!(
                        "Parse resource permission failed for {}:{item}",
                        if is_topic { "topic" } else { "group" }
                    )
                })?;
                let key = if is_topic {
                    name.to_owned()
                } else {
                    retry_topic(name)
                };
                resources.insert(key, Perm::parse(Some(perm)));
            }
        }
        let white = AddressPattern::parse(white_remote_address.as_deref().unwrap_or(""))?;
        Ok(Account {
            key: ReadyKey(SigningKey::new(secret_key.as_bytes())),
            access_key,
            secret_key,
            white_remote_address,
            admin,
            default_topic_perm,
            default_group_perm,
            topic_perms,
            group_perms,
            white,
            resources,
        })
    }
}

/// `name=PERM` as 4.9.7 splits it (commons-lang `split`: empty pieces
/// dropped, exactly two left).
fn split_resource(item: &str) -> Option<(&str, &str)> {
    let mut pieces = item.split('=').filter(|p| !p.is_empty());
    let (name, perm) = (pieces.next()?, pieces.next()?);
    pieces.next().is_none().then(|| (name.trim(), perm.trim()))
}

/// Whether every `name=PERM` item is well formed with a known permission,
/// as 4.9.7 checks items given to UPDATE_AND_CREATE_ACL_CONFIG.
pub(crate) fn check_resource_items(items: &[String]) -> Result<(), String> {
    for item in items {
        match split_resource(item) {
            None => {
                return Err(format!(
                    "Parse Resource format error for {item}.\nThe expected resource format is 'Res=Perm'. For example: topicA=SUB"
                ))
            }
            Some((_, perm)) if !Perm::is_valid_text(perm) => {
                return Err(format!(
                    "Parse resource permission error for {item}.\nThe expected permissions are 'SUB' or 'PUB' or 'SUB|PUB' or 'PUB|SUB'."
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The file's `dataVersion`: bumped by every change the admin codes make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DataVersion {
    /// Milliseconds since the epoch of the last change.
    pub timestamp: i64,
    /// Changes made.
    pub counter: i64,
}

/// A parsed accounts file.
#[derive(Debug, Clone, Default)]
pub(crate) struct AclFile {
    /// `globalWhiteRemoteAddresses`, as written.
    pub global_white_text: Vec<String>,
    /// The same, parsed.
    pub global_white: Vec<AddressPattern>,
    /// Accounts by access key (a later duplicate replaces an earlier one,
    /// as in 4.9.7).
    pub accounts: HashMap<String, Account>,
    /// The access keys in file order, for listing.
    pub order: Vec<String>,
    /// `dataVersion` (of the accounts file, when files are merged).
    pub data_version: DataVersion,
    /// The file each account comes from (merged files only).
    pub sources: HashMap<String, PathBuf>,
    /// Each file's `dataVersion`, in reading order (merged files only).
    pub versions: Vec<(PathBuf, DataVersion)>,
}

impl AclFile {
    /// Parses the file's text. An empty file has no accounts.
    pub(crate) fn parse(text: &str) -> Result<AclFile, String> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(AclFile::default());
        };
        let mut file = AclFile::default();
        match &doc {
            Yaml::Hash(_) => {}
            Yaml::Null => return Ok(file),
            _ => return Err("the top level is not a mapping".into()),
        }
        file.global_white_text = string_list(&doc["globalWhiteRemoteAddresses"])
            .map_err(|e| format!("globalWhiteRemoteAddresses: {e}"))?;
        file.global_white = file
            .global_white_text
            .iter()
            .map(|a| AddressPattern::parse(a))
            .collect::<Result<_, _>>()?;
        match &doc["accounts"] {
            Yaml::BadValue | Yaml::Null => {}
            Yaml::Array(items) => {
                for (n, item) in items.iter().enumerate() {
                    let account = parse_account(item).map_err(|e| format!("accounts[{n}]: {e}"))?;
                    if !file.accounts.contains_key(&account.access_key) {
                        file.order.push(account.access_key.clone());
                    }
                    file.accounts.insert(account.access_key.clone(), account);
                }
            }
            _ => return Err("accounts is not a list".into()),
        }
        if let Yaml::Array(versions) = &doc["dataVersion"] {
            if let Some(v) = versions.first() {
                file.data_version = DataVersion {
                    timestamp: integer(&v["timestamp"]).unwrap_or(0),
                    counter: integer(&v["counter"]).unwrap_or(0),
                };
            }
        }
        Ok(file)
    }
}

impl AclFile {
    /// The accounts of several files read in `files`' order, as 4.9.7
    /// merges its ACL files: global whitelists add up, an access key is
    /// taken from the first file that has it (the others are logged), and
    /// `data_version` is that of `main`, the accounts file.
    pub(crate) fn merge(files: Vec<(PathBuf, AclFile)>, main: &Path) -> AclFile {
        let mut merged = AclFile::default();
        for (path, file) in files {
            merged.global_white_text.extend(file.global_white_text);
            merged.global_white.extend(file.global_white);
            let mut accounts = file.accounts;
            for key in file.order {
                let Some(account) = accounts.remove(&key) else {
                    continue;
                };
                if let Some(first) = merged.sources.get(&key) {
                    log::warn!(
                        "ACL access key {key} is in {} and {}: the first is used",
                        first.display(),
                        path.display()
                    );
                    continue;
                }
                merged.sources.insert(key.clone(), path.clone());
                merged.order.push(key.clone());
                merged.accounts.insert(key, account);
            }
            if path == main {
                merged.data_version = file.data_version;
            }
            merged.versions.push((path, file.data_version));
        }
        merged
    }
}

fn parse_account(item: &Yaml) -> Result<Account, String> {
    if !matches!(item, Yaml::Hash(_)) {
        return Err("an account is not a mapping".into());
    }
    let admin = match &item["admin"] {
        Yaml::Boolean(b) => *b,
        Yaml::BadValue | Yaml::Null => false,
        other => match scalar(other).as_deref().map(str::trim) {
            Some("true") => true,
            Some("false") | Some("") => false,
            _ => return Err("admin is not true or false".into()),
        },
    };
    Account::new(
        scalar(&item["accessKey"]).unwrap_or_default(),
        scalar(&item["secretKey"]).unwrap_or_default(),
        scalar(&item["whiteRemoteAddress"]),
        admin,
        scalar(&item["defaultTopicPerm"]),
        scalar(&item["defaultGroupPerm"]),
        string_list(&item["topicPerms"]).map_err(|e| format!("topicPerms: {e}"))?,
        string_list(&item["groupPerms"]).map_err(|e| format!("groupPerms: {e}"))?,
    )
}

/// A scalar as text; `None` for null or missing.
pub(crate) fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn integer(value: &Yaml) -> Option<i64> {
    match value {
        Yaml::Integer(i) => Some(*i),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A list of scalars; missing or null is empty.
fn string_list(value: &Yaml) -> Result<Vec<String>, String> {
    match value {
        Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
        Yaml::Array(items) => items
            .iter()
            .map(|i| scalar(i).ok_or_else(|| "an item is not a scalar".to_owned()))
            .collect(),
        _ => Err("not a list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    admin: true
";

    #[test]
    fn reads_4_9_7_sample_file() {
        let file = AclFile::parse(SAMPLE).expect("parses");
        assert_eq!(file.global_white.len(), 2);
        assert_eq!(file.order, ["RocketMQ", "rocketmq2"]);
        let a = &file.accounts["RocketMQ"];
        assert_eq!(a.secret_key, "12345678");
        assert!(!a.admin);
        assert_eq!(a.resources["topicB"], Perm::parse(Some("PUB|SUB")));
        assert_eq!(a.resources["%RETRY%groupA"], Perm::DENY);
        assert_eq!(a.default_perm(true), Perm::SUB);
        assert_eq!(a.default_perm(false), Perm::DENY);
        assert!(file.accounts["rocketmq2"].admin);
    }

    #[test]
    fn empty_file_has_no_accounts() {
        assert!(AclFile::parse("").expect("parses").accounts.is_empty());
        assert!(AclFile::parse("# nothing\n")
            .expect("parses")
            .accounts
            .is_empty());
    }

    #[test]
    fn refuses_short_keys_bad_items_and_bad_addresses() {
        for bad in [
            "accounts:\n  - accessKey: short\n    secretKey: 12345678\n",
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 123\n",
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms: [a]\n",
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    whiteRemoteAddress: 1.2.3\n",
            "globalWhiteRemoteAddresses: [999.1.1.1]\n",
            "accounts: [\n",
            "- just a list\n",
        ] {
            assert!(AclFile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_resource_items_like_update_acl_config() {
        assert!(check_resource_items(&["t=PUB".into(), "g=DENY".into()]).is_ok());
        assert!(check_resource_items(&["t=WRITE".into()]).is_err());
        assert!(check_resource_items(&["t".into()]).is_err());
    }
}
