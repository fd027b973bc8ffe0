//! Retention and the disk check (RocketMQ's CleanCommitLogService).
//!
//! CommitLog segments older than `fileReservedTime` are deleted at the hours of
//! `deleteWhen`, or whatever the hour once the disk is fuller than
//! `diskMaxUsedSpaceRatio`; above the forced-clean ratio even segments that have
//! not expired go, oldest first. ConsumeQueues and IndexFiles then drop what
//! pointed into the deleted segments. Above `diskSpaceWarningLevelRatio` the
//! store refuses appends until space is freed.

use std::time::SystemTime;

use super::error::Result;
use super::message_store::MessageStore;

/// Percentage of the store's file system in use, counting blocks reserved for
/// root as used (the broker rarely runs as root).
pub fn disk_used_percent(store: &MessageStore) -> Option<u32> {
    let stat = nix::sys::statvfs::statvfs(store.root()).ok()?;
    let total = stat.blocks() as f64;
    if total <= 0.0 {
        return None;
    }
    let used = total - stat.blocks_available() as f64;
    Some(((used / total) * 100.0).clamp(0.0, 100.0) as u32)
}

/// Measures the disk and sets or clears the store's disk-full state.
pub fn check_disk(store: &MessageStore) {
    let Some(used) = disk_used_percent(store) else {
        log::warn!("cannot measure the disk of {}", store.root().display());
        return;
    };
    let limit = store.config().disk_space_warning_level_ratio;
    store.set_disk_state(used, used >= limit);
}

/// One retention round. `manual` deletes expired segments whatever the hour.
/// Returns how many CommitLog segments were deleted.
pub fn clean(store: &MessageStore, manual: bool) -> Result<usize> {
    let config = store.config();
    let used = disk_used_percent(store).unwrap_or(0);
    let hour_ok = config
        .delete_hours()
        .map(|hours| hours.contains(&local_hour()))
        .unwrap_or(false);
    let space_needed = used > config.disk_max_used_space_ratio;
    let force = used > config.disk_space_clean_forcibly_ratio;
    if !(manual || hour_ok || space_needed || force) {
        return Ok(0);
    }
    let expired_before = SystemTime::now()
        .checked_sub(config.file_reserved_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let log = store.commit_log();
    let deleted = log.delete_expired(
        expired_before,
        force,
        store.dispatched_offset(),
        config.delete_file_batch_max,
    )?;
    if deleted > 0 {
        let min = log.min_offset();
        for queue in store.consume_queues().all() {
            queue.delete_expired(min)?;
        }
        if let Some(index) = store.index() {
            index.delete_before(min)?;
        }
        check_disk(store);
    }
    Ok(deleted)
}

/// The hour of the day in local time, as `deleteWhen` means it.
fn local_hour() -> u32 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as nix::libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r only reads `now` and writes the `tm` we own; it is the
    // thread-safe variant. This is the one libc call outside mapped_file.rs: std
    // has no local time, and a date crate for one hour of the day is not worth it.
    let hour = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        if nix::libc::localtime_r(&now, &mut tm).is_null() {
            return ((now / 3600) % 24) as u32;
        }
        tm.tm_hour
    };
    u32::try_from(hour).unwrap_or(0)
}
