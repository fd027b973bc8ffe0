//! The changes the ACL admin codes make, written to the accounts file as
//! 4.9.7 writes them: the file is read as a YAML document, the account (or
//! the global whitelist) changed in it, everything else kept, `dataVersion`
//! bumped, and the result written whole (temp file, fsync, rename). The new
//! text is parsed before it is written, so a change that would break the
//! file is refused and the file stays as it was.

use std::sync::PoisonError;

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use super::accounts::{check_resource_items, scalar, AclFile, KEY_MIN_LENGTH};
use std::path::Path;

use super::Acl;
use crate::store::checkpoint::write_atomically;

/// UPDATE_AND_CREATE_ACL_CONFIG's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountUpdate {
    /// The account to create or change.
    pub access_key: String,
    /// Its secret key (required, as in 4.9.7).
    pub secret_key: Option<String>,
    /// `whiteRemoteAddress`.
    pub white_remote_address: Option<String>,
    /// `admin` (always written, as in 4.9.7).
    pub admin: bool,
    /// `defaultTopicPerm`.
    pub default_topic_perm: Option<String>,
    /// `defaultGroupPerm`.
    pub default_group_perm: Option<String>,
    /// `topicPerms`.
    pub topic_perms: Option<Vec<String>>,
    /// `groupPerms`.
    pub group_perms: Option<Vec<String>>,
}

fn key(name: &str) -> Yaml {
    Yaml::String(name.to_owned())
}

fn text_list(items: &[String]) -> Yaml {
    Yaml::Array(items.iter().map(|s| Yaml::String(s.clone())).collect())
}

impl Acl {
    /// Creates or changes an account.
    pub(crate) fn update_account(&self, update: &AccountUpdate) -> Result<(), String> {
        let secret = update.secret_key.as_deref().unwrap_or("");
        if update.access_key.chars().count() <= KEY_MIN_LENGTH
            || secret.chars().count() <= KEY_MIN_LENGTH
        {
            return Err(format!(
                "The accessKey={} and its secretKey cannot be null and length should longer than {KEY_MIN_LENGTH}",
                update.access_key
            ));
        }
        for items in [&update.topic_perms, &update.group_perms]
            .into_iter()
            .flatten()
        {
            check_resource_items(items)?;
        }
        // An account is changed in its own file; a new one goes to the
        // accounts file.
        let target = self
            .snapshot()
            .sources
            .get(&update.access_key)
            .cloned()
            .unwrap_or_else(|| self.path.clone());
        self.edit_file(&target, |doc| {
            let accounts = doc
                .entry(key("accounts"))
                .or_insert_with(|| Yaml::Array(Vec::new()));
            if !matches!(accounts, Yaml::Array(_)) {
                *accounts = Yaml::Array(Vec::new());
            }
            let Yaml::Array(list) = accounts else {
                unreachable!("made a list above")
            };
            let existing = list.iter_mut().find_map(|a| match a {
                Yaml::Hash(h)
                    if h.get(&key("accessKey")).and_then(scalar).as_deref()
                        == Some(update.access_key.as_str()) =>
                {
                    Some(h)
                }
                _ => None,
            });
            let account = match existing {
                Some(h) => h,
                None => {
                    list.push(Yaml::Hash(Hash::new()));
                    let Some(Yaml::Hash(h)) = list.last_mut() else {
                        unreachable!("pushed a mapping")
                    };
                    h
                }
            };
            account.insert(key("accessKey"), key(&update.access_key));
            account.insert(key("secretKey"), key(secret));
            if let Some(white) = &update.white_remote_address {
                account.insert(key("whiteRemoteAddress"), key(white));
            }
            account.insert(key("admin"), Yaml::Boolean(update.admin));
            for (name, value) in [
                ("defaultTopicPerm", &update.default_topic_perm),
                ("defaultGroupPerm", &update.default_group_perm),
            ] {
                if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                    account.insert(key(name), key(v));
                }
            }
            for (name, value) in [
                ("topicPerms", &update.topic_perms),
                ("groupPerms", &update.group_perms),
            ] {
                if let Some(items) = value {
                    account.insert(key(name), text_list(items));
                }
            }
            Ok(true)
        })
        .map(|_| ())
    }

    /// Deletes an account; `false` when there is none by that key.
    pub(crate) fn delete_account(&self, access_key: &str) -> Result<bool, String> {
        let Some(target) = self.snapshot().sources.get(access_key).cloned() else {
            return Ok(false);
        };
        self.edit_file(&target, |doc| {
            let Some(Yaml::Array(list)) = doc.get_mut(&key("accounts")) else {
                return Ok(false);
            };
            let before = list.len();
            list.retain(|a| scalar(&a["accessKey"]).as_deref() != Some(access_key));
            Ok(list.len() != before)
        })
    }

    /// Replaces `globalWhiteRemoteAddresses` of `file` (one of the files
    /// read; by default the accounts file).
    pub(crate) fn update_global_white(
        &self,
        addrs: &[String],
        file: Option<&Path>,
    ) -> Result<(), String> {
        let target = file.unwrap_or(&self.path).to_path_buf();
        if !self.knows(&target) {
            return Err(format!("{} is not one of the ACL files", target.display()));
        }
        self.edit_file(&target, |doc| {
            doc.insert(key("globalWhiteRemoteAddresses"), text_list(addrs));
            Ok(true)
        })
        .map(|_| ())
    }

    /// Applies `change` to `target`'s document; when it reports a change,
    /// bumps `dataVersion`, checks, writes, and reads the files again.
    fn edit_file(
        &self,
        target: &Path,
        change: impl FnOnce(&mut Hash) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let _one_at_a_time = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let text = match std::fs::read_to_string(target) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", target.display())),
        };
        let mut doc = match YamlLoader::load_from_str(&text)
            .map_err(|e| format!("{} is broken: {e}", target.display()))?
            .into_iter()
            .next()
        {
            None | Some(Yaml::Null) => Hash::new(),
            Some(Yaml::Hash(h)) => h,
            Some(_) => return Err(format!("{} is not a mapping", target.display())),
        };
        if !change(&mut doc)? {
            return Ok(false);
        }
        let old = AclFile::parse(&text)
            .map(|f| f.data_version)
            .unwrap_or_default();
        let mut version = Hash::new();
        version.insert(key("counter"), Yaml::Integer(old.counter + 1));
        version.insert(key("timestamp"), Yaml::Integer(mq_protocol::time::now_ms()));
        doc.insert(key("dataVersion"), Yaml::Array(vec![Yaml::Hash(version)]));
        let mut out = String::new();
        YamlEmitter::new(&mut out)
            .dump(&Yaml::Hash(doc))
            .map_err(|e| format!("cannot write the ACL file: {e:?}"))?;
        out.push('\n');
        let version = AclFile::parse(&out)?.data_version.counter;
        write_atomically(target, out.as_bytes()).map_err(|e| e.to_string())?;
        log::info!(
            "ACL file {} changed by an admin request (version {version})",
            target.display()
        );
        let (file, stamps) = self.read_all().map_err(|why| {
            format!(
                "{} was written, but the ACL files are broken: {why}",
                target.display()
            )
        })?;
        self.install(file, stamps);
        Ok(true)
    }
}
