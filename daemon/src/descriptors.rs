//! The process's file descriptor budget: how many connections each listener
//! may hold so that the store, the persisted JSON files and the log always
//! find a descriptor.
//!
//! Every accepted connection costs one descriptor, and so does every mapped
//! store file, every JSON save and the broker's own connections to the
//! NameServers. Once `RLIMIT_NOFILE` is reached, whichever asks next fails,
//! and idle clients would otherwise win that race against the store. So the
//! soft limit is split: [`reserve`] is kept back for the process itself, the
//! rest is shared equally by the listeners of the process, and a listener at
//! its share closes new connections at once (see [`crate::server::serve`]).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// What [`raise_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now in force.
    pub now: u64,
    /// The hard limit, the most an unprivileged process may raise to.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Shells and service
/// managers often start processes with a soft limit of 1024 while allowing far
/// more; a broker should not be held to the smaller number by accident.
pub fn raise_limit() -> nix::Result<Raised> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (now, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(Raised { before, now, hard })
}

/// The soft `RLIMIT_NOFILE` now in force. If it cannot be read, the common
/// default of 1024 is assumed, which errs on the side of fewer connections.
pub fn soft_limit() -> usize {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        // An infinite limit does not fit in usize on 32-bit targets; saturate.
        Ok((soft, _)) => usize::try_from(soft).unwrap_or(usize::MAX),
        Err(e) => {
            log::warn!("cannot read RLIMIT_NOFILE ({e}); assuming 1024");
            1024
        }
    }
}

/// The fewest descriptors kept back from connections. Besides its clients a
/// broker holds stdin, stdout and stderr; the reactor's epoll, eventfd and
/// timerfd; its listeners; a connection to each NameServer; the store's lock
/// file; every CommitLog segment until retention deletes it; an IndexFile or
/// two; a mapped ConsumeQueue file for each queue written to; and, for
/// moments, two for each checkpoint or JSON save (the `.bak` copy's source
/// and destination, the temp file and its directory) and one for each of the
/// housekeeping's directory listings. A fresh standalone mqd holds about 15;
/// 128 leaves room for a dozen topics of eight queues and a few segments.
pub const MIN_RESERVE: usize = 128;

/// Descriptors kept back from connections when the soft limit is `limit`:
/// an eighth of it, at least [`MIN_RESERVE`]. The eighth grows with the
/// limit because the store does: a machine given hundreds of thousands of
/// descriptors usually runs a broker with thousands of queues, each holding a
/// mapped file open. Never more than half the limit, so that a tiny limit
/// still leaves connections something.
pub fn reserve(limit: usize) -> usize {
    (limit / 8).max(MIN_RESERVE).min(limit / 2)
}

/// The connections each of `listeners` listeners may hold when the soft
/// limit is `limit`: what [`reserve`] leaves, shared equally, at least one.
pub fn connections_per_listener_at(limit: usize, listeners: usize) -> usize {
    ((limit - reserve(limit)) / listeners.max(1)).max(1)
}

/// [`connections_per_listener_at`] the current soft limit.
pub fn connections_per_listener(listeners: usize) -> usize {
    connections_per_listener_at(soft_limit(), listeners)
}

/// How many descriptors the process has open, where Linux's `/proc/self/fd`
/// says; `None` elsewhere.
pub fn open_count() -> Option<usize> {
    // The listing itself holds one descriptor while it runs.
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// Logs how the descriptor limit is shared, and warns when the listeners,
/// once full, would leave less than half of [`reserve`] free beyond what the
/// process holds now (the store's mapped files among it): the store could then
/// fail to open its next file. Called once everything has started.
pub fn check_headroom(listener_limits: &[usize]) {
    let limit = soft_limit();
    let connections = listener_limits
        .iter()
        .fold(0usize, |sum, max| sum.saturating_add(*max));
    let Some(open) = open_count() else {
        log::info!("descriptor limit {limit}; connections per listener: {listener_limits:?}");
        return;
    };
    log::info!(
        "descriptor limit {limit}: {open} open after start; connections per listener: \
         {listener_limits:?}"
    );
    let free_when_full = limit.saturating_sub(connections).saturating_sub(open);
    if free_when_full < reserve(limit) / 2 {
        log::warn!(
            "with every listener full ({connections} connections), only {free_when_full} of \
             {limit} descriptors would be left for the store to open files ({open} are open \
             now); raise the hard RLIMIT_NOFILE or lower serverMaxConnections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_what_the_reserve_leaves() {
        // The common soft limit before raising: a standalone mqd's three listeners.
        assert_eq!(reserve(1024), 128);
        assert_eq!(connections_per_listener_at(1024, 3), 298);
        // A low limit, as in the descriptor test.
        assert_eq!(reserve(256), 128);
        assert_eq!(connections_per_listener_at(256, 3), 42);
        // A systemd default hard limit: the reserve grows with the limit.
        assert_eq!(reserve(524_288), 65_536);
        assert_eq!(connections_per_listener_at(524_288, 2), 229_376);
        // Tiny limits still leave every listener a connection.
        assert_eq!(reserve(20), 10);
        assert_eq!(connections_per_listener_at(20, 3), 3);
        assert_eq!(connections_per_listener_at(2, 3), 1);
        assert_eq!(connections_per_listener_at(0, 0), 1);
        assert!(connections_per_listener_at(usize::MAX, 3) > 0);
    }

    #[test]
    fn counts_open_descriptors_on_linux() {
        if cfg!(target_os = "linux") {
            // Other tests open files concurrently, so only the floor is certain.
            assert!(open_count().expect("/proc/self/fd") >= 1);
        }
    }
}
