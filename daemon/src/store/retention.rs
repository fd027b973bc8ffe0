//! Retention (RocketMQ's CleanCommitLogService).
//!
//! CommitLog segments older than `fileReservedTime` are deleted at the hours of
//! `deleteWhen`, or whatever the hour once the disk is fuller than
//! `diskMaxUsedSpaceRatio` or appends are refused. ConsumeQueues and IndexFiles
//! then drop what pointed into the deleted segments.
//!
//! Segments that have not expired are deleted (oldest first) only when an
//! operator has set `cleanFileForciblyEnable` and the disk is above
//! `diskSpaceCleanForciblyRatio` or full. RocketMQ does that by default; mq
//! does not, because it deletes acknowledged messages nobody has read, while a
//! full disk only refuses sends (see [`super::disk_guard`]), which producers
//! answer by sending to another broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::error::Result;
use super::message_store::MessageStore;

/// What retention remembers between rounds.
#[derive(Debug, Default)]
pub struct RetentionState {
    /// Set while the disk is above the forced-clean ratio and unexpired
    /// segments are kept, so that the operator is told once, not every round.
    keeping_unexpired_told: AtomicBool,
}

/// One retention round. `manual` deletes expired segments whatever the hour.
/// Returns how many CommitLog segments were deleted.
pub fn clean(store: &MessageStore, manual: bool) -> Result<usize> {
    let config = store.config();
    let guard = store.disk_guard();
    guard.refresh();
    let used = guard.reading().used_percent;
    let refusing = guard.is_full();
    let hour_ok = config
        .delete_hours()
        .map(|hours| hours.contains(&local_hour()))
        .unwrap_or(false);
    let space_needed = used > config.disk_max_used_space_ratio || refusing;
    let nearly_full = used > config.disk_space_clean_forcibly_ratio || refusing;
    let force = nearly_full && config.clean_file_forcibly_enable;
    let told = &store.retention_state().keeping_unexpired_told;
    if nearly_full && !force {
        if !told.swap(true, Ordering::Relaxed) {
            log::warn!(
                "disk of {} is {used}% full: keeping unexpired commit log segments \
                 (cleanFileForciblyEnable=false); sends are refused above {}% \
                 until space is freed",
                store.root().display(),
                config.disk_space_warning_level_ratio
            );
        }
    } else {
        told.store(false, Ordering::Relaxed);
    }
    if !(manual || hour_ok || space_needed) {
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
        guard.refresh();
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
