//! Access control: RocketMQ 4.9.7's plain ACL (`aclEnable=true`, accounts
//! in `plain_acl.yml`), checked for every request before the broker
//! dispatches it.
//!
//! A request passes when its peer is in `globalWhiteRemoteAddresses`, or
//! when it names an account (`AccessKey`) whose `whiteRemoteAddress` holds
//! the peer, or whose secret key signs it (`Signature`, see
//! [`mq_protocol::acl`]) and whose permissions cover what it touches
//! ([`resource`]). Anything else is refused as 4.9.7 refuses it: SYSTEM_ERROR
//! with the reason in the remark (`AclException: No acl config for
//! nobody`), each refusal logged with the peer's address, at most once a
//! second with a count of the others.
//!
//! - [`accounts`]: the file's format and its checks.
//! - [`address`]: whitelist patterns.
//! - [`permission`]: PUB, SUB, DENY.
//! - [`resource`]: what each request touches; the admin-only codes.
//! - [`edit`]: the changes the ACL admin codes make to the file.
//!
//! The file is read at start (a broken file stops the broker: nothing opens
//! by accident) and again whenever its size, modification time or inode
//! changes, checked every second. A file that no longer parses keeps the
//! last good accounts in force and logs why; so does a file that vanished.

pub(crate) mod accounts;
pub(crate) mod address;
mod edit;
pub(crate) mod permission;
pub(crate) mod resource;

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mq_protocol::acl::{verify_request_with, ACCESS_KEY, SIGNATURE, UNIQUE_MSG_QUERY_FLAG};
use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use thiserror::Error;

use crate::shutdown::Shutdown;
use accounts::{Account, AclFile};
pub(crate) use edit::AccountUpdate;
use permission::Perm;
use resource::{is_group, needs_admin, Needs, TRACE_TOPIC};

/// How often the file is looked at for changes (4.9.7's watcher: 5 s).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Refusals are logged at most this often; the others are counted.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// What 4.9.7's remark starts with: the exception's class.
const REMARK_PREFIX: &str = "org.apache.rocketmq.acl.common.AclException: ";

/// Why the accounts files cannot be used at start.
#[derive(Debug, Error)]
pub enum AclError {
    /// A file cannot be read, does not parse, or has an entry 4.9.7 would
    /// refuse.
    #[error("cannot use the ACL accounts ({path}): {why}")]
    Broken {
        /// The accounts file.
        path: PathBuf,
        /// What is wrong, naming the file at fault.
        why: String,
    },
}

/// Identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            inode: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
}

/// The files read and the version of each, in reading order.
type Stamps = Vec<(PathBuf, Stamp)>;

/// The broker's access control: the accounts in force and their files.
pub struct Acl {
    /// The accounts file (4.9.7's default file): new accounts and the
    /// global whitelist are written here.
    path: PathBuf,
    /// A directory whose `.yml` and `.yaml` files (searched recursively)
    /// are read too, before `path`, as 4.9.7 reads `conf/acl/`.
    dir: Option<PathBuf>,
    /// The accounts in force; replaced whole on reload, so a check sees one
    /// version of the files.
    current: RwLock<Arc<AclFile>>,
    /// The versions of the files `current` came from, and the last set that
    /// failed to parse (or vanished), so that it is reported once.
    stamps: Mutex<(Stamps, Option<Stamps>)>,
    /// When a refusal was last logged, and how many were not since.
    refusals: Mutex<(Option<Instant>, u64)>,
    /// The admin codes change the file one at a time.
    edit: Mutex<()>,
}

impl std::fmt::Debug for Acl {
    // The accounts hold secrets: only the file is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Acl {
    /// Reads the accounts file `path` and, when given, every `.yml` and
    /// `.yaml` file under `dir` (first, as 4.9.7 reads `conf/acl/`; an
    /// access key in two files is taken from the first). No file at all
    /// means no accounts (every request but the whitelisted is refused
    /// until one is written); a broken one is an error.
    pub fn open(path: PathBuf, dir: Option<PathBuf>) -> Result<Acl, AclError> {
        let acl = Acl {
            path,
            dir,
            current: RwLock::new(Arc::new(AclFile::default())),
            stamps: Mutex::new((Vec::new(), None)),
            refusals: Mutex::new((None, 0)),
            edit: Mutex::new(()),
        };
        let (file, stamps) = acl.read_all().map_err(|why| AclError::Broken {
            path: acl.path.clone(),
            why,
        })?;
        if stamps.is_empty() {
            log::warn!(
                "ACL is on and {} does not exist: every request not from a \
                 whitelisted address is refused until it is written",
                acl.path.display()
            );
        }
        log::info!(
            "ACL on: {} account(s), {} global whitelist entr(ies) from {} file(s) ({}{})",
            file.accounts.len(),
            file.global_white.len(),
            stamps.len(),
            acl.path.display(),
            acl.dir
                .as_ref()
                .map_or(String::new(), |d| format!(" and {}", d.display()))
        );
        acl.install(file, stamps);
        Ok(acl)
    }

    /// The files to read, in order: those under the directory (sorted),
    /// then the accounts file; only those that exist.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(dir) = &self.dir {
            collect_yaml(dir, &mut files);
            files.sort();
        }
        if self.path.is_file() && !files.contains(&self.path) {
            files.push(self.path.clone());
        }
        files
    }

    /// Reads and merges every file; the error names the file at fault.
    fn read_all(&self) -> Result<(AclFile, Stamps), String> {
        let mut stamps = Vec::new();
        let mut parsed = Vec::new();
        for path in self.files() {
            // Stamped before reading: a change while reading is seen next time.
            let Some(stamp) = Stamp::of(&path) else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let file = AclFile::parse(&text).map_err(|why| format!("{}: {why}", path.display()))?;
            stamps.push((path.clone(), stamp));
            parsed.push((path, file));
        }
        Ok((AclFile::merge(parsed, &self.path), stamps))
    }

    /// Whether `path` is one of the files read (the accounts file included,
    /// even before it exists).
    pub(crate) fn knows(&self, path: &Path) -> bool {
        path == self.path || self.files().iter().any(|f| f == path)
    }

    /// The accounts file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The accounts in force.
    pub(crate) fn snapshot(&self) -> Arc<AclFile> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn install(&self, file: AclFile, stamps: Stamps) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(file);
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) = (stamps, None);
    }

    /// Checks `req` from `peer`; the error is 4.9.7's reason.
    pub(crate) fn check(&self, peer: IpAddr, req: &RemotingCommand) -> Result<(), String> {
        // 4.9.7 reads the resources first, so a request it cannot read is
        // refused even from a whitelisted address. No extFields at all is
        // Java's null map: nothing to read.
        let needs = if req.ext_fields.is_empty() {
            Needs::default()
        } else {
            resource::needs(req)?
        };
        let file = self.snapshot();
        let Some(account) = authenticate(&file, peer, req)? else {
            return Ok(());
        };
        // Message traces go to one topic every account may write.
        if needs
            .0
            .iter()
            .any(|(r, p)| r.as_ref() == TRACE_TOPIC && *p == Perm::PUB)
        {
            return Ok(());
        }
        check_perm(req.code, &needs, account)
    }

    /// Checks a request that only admins may make (the NameServer's write
    /// codes): the whitelists as in [`Acl::check`], else a valid signature
    /// of an admin account. The error is the reason, worded as 4.9.7's.
    pub(crate) fn check_admin(&self, peer: IpAddr, req: &RemotingCommand) -> Result<(), String> {
        let file = self.snapshot();
        let Some(account) = authenticate(&file, peer, req)? else {
            return Ok(());
        };
        if !account.admin {
            return Err(format!(
                "Need admin permission for request code={}, but accessKey={} is not",
                req.code, account.access_key
            ));
        }
        Ok(())
    }

    /// The response refusing `req` for `reason` (none for a one-way
    /// request), after logging it.
    pub(crate) fn refuse(
        &self,
        peer: SocketAddr,
        req: &RemotingCommand,
        reason: &str,
    ) -> Option<RemotingCommand> {
        self.log_refusal(peer, req.code, reason);
        // 4.9.7's remark also names the stack frame that threw; clients
        // look for the exception's text, which is the same.
        (!req.is_oneway()).then(|| {
            RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(format!("{REMARK_PREFIX}{reason}")),
            )
        })
    }

    fn log_refusal(&self, peer: SocketAddr, code: i32, reason: &str) {
        let mut state = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state
            .0
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            state.1 += 1;
            return;
        }
        let others = std::mem::take(&mut state.1);
        state.0 = Some(now);
        drop(state);
        if others > 0 {
            log::warn!(
                "ACL refused request {code} from {peer}: {reason} ({others} other refusal(s) not logged)"
            );
        } else {
            log::warn!("ACL refused request {code} from {peer}: {reason}");
        }
    }

    /// Reads the files again if any changed, appeared or went since they
    /// were last read. A file that does not parse leaves the accounts in
    /// force, and so does the loss of every file.
    pub fn reload_if_changed(&self) {
        let now: Stamps = self
            .files()
            .into_iter()
            .filter_map(|p| Stamp::of(&p).map(|s| (p, s)))
            .collect();
        {
            let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
            if now == stamps.0 || stamps.1.as_ref() == Some(&now) {
                return;
            }
            if now.is_empty() {
                log::error!(
                    "ACL file {} is gone; keeping the last accounts",
                    self.path.display()
                );
                stamps.1 = Some(now);
                return;
            }
        }
        match self.read_all() {
            Ok((file, stamps)) => {
                log::info!(
                    "ACL reloaded: {} account(s), {} global whitelist entr(ies) from {} file(s)",
                    file.accounts.len(),
                    file.global_white.len(),
                    stamps.len()
                );
                self.install(file, stamps);
            }
            Err(why) => {
                log::error!(
                    "ACL files changed but are broken, keeping the last good accounts: {why}"
                );
                self.stamps.lock().unwrap_or_else(PoisonError::into_inner).1 = Some(now);
            }
        }
    }

    /// Looks for changes to the file every [`WATCH_INTERVAL`] until
    /// shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        while !shutdown.sleep(WATCH_INTERVAL).await {
            let acl = self.clone();
            // A stat and, rarely, a small read: off the executor all the same.
            blocking::unblock(move || acl.reload_if_changed()).await;
        }
    }
}

/// Adds the `.yml` and `.yaml` files under `dir`, at any depth.
fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

/// 4.9.7's `checkPerm`: admin codes need an admin; each resource needs its
/// permission, from the account's list or its default.
/// Who sent `req` from `peer`, as both checks establish it (4.9.7's order):
/// `None` for a whitelisted address (globally, or the named account's), else
/// the account whose secret signed it. The error is 4.9.7's reason.
fn authenticate<'a>(
    file: &'a AclFile,
    peer: IpAddr,
    req: &RemotingCommand,
) -> Result<Option<&'a Account>, String> {
    if file.global_white.iter().any(|p| p.matches(peer)) {
        return Ok(None);
    }
    let access_key = req
        .get(ACCESS_KEY)
        .ok_or_else(|| "No accessKey is configured".to_owned())?;
    let account = file
        .accounts
        .get(access_key)
        .ok_or_else(|| format!("No acl config for {access_key}"))?;
    if account.white.matches(peer) {
        return Ok(None);
    }
    let signature = req.get(SIGNATURE).unwrap_or("");
    if !verify_request_with(
        &account.key.0,
        &req.ext_fields,
        &req.body,
        &[SIGNATURE, UNIQUE_MSG_QUERY_FLAG],
        signature,
    ) {
        return Err(format!("Check signature failed for accessKey={access_key}"));
    }
    Ok(Some(account))
}

fn check_perm(code: i32, needs: &Needs, account: &Account) -> Result<(), String> {
    if needs_admin(code) && !account.admin {
        return Err(format!(
            "Need admin permission for request code={code}, but accessKey={} is not",
            account.access_key
        ));
    }
    if needs.0.is_empty() || (account.resources.is_empty() && account.admin) {
        return Ok(());
    }
    for (resource, needed) in &needs.0 {
        let group = is_group(resource);
        let owned = account
            .resources
            .get(resource.as_ref())
            .copied()
            .unwrap_or_else(|| account.default_perm(group));
        if !owned.grants(*needed) {
            // 4.9.7 says "default" whether the permission was a default or not.
            let printed = if group {
                format!(
                    "group:{}",
                    &resource[mq_protocol::topics::RETRY_GROUP_TOPIC_PREFIX.len()..]
                )
            } else {
                format!("topic:{resource}")
            };
            return Err(format!("No default permission for {printed}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
