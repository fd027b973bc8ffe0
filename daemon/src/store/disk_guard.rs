//! The disk guard: a recent reading of the store's file system, and the one
//! decision of whether appends may go on.
//!
//! Appends ask [`DiskGuard::check_writable`], which reads one atomic flag, so
//! the check costs nothing on the hot path. The flag is recomputed from
//! `statvfs` by [`DiskGuard::refresh`]: every second by the housekeeping
//! thread, each time a CommitLog segment is created, and whenever creating a
//! store file failed for lack of space. A full disk thus becomes a refusal the
//! client understands (SERVICE_NOT_AVAILABLE, so producers move to another
//! broker) instead of ENOSPC half way through creating a file, and once space
//! is freed appends resume within a second, without a restart.
//!
//! Appends are refused while any of these holds:
//! - the file system is fuller than `diskSpaceWarningLevelRatio` (90 %);
//! - less is free than the reserve kept for the files built from the log
//!   (ConsumeQueue and IndexFile files): an acknowledged message must always be
//!   dispatchable, or consumers could not read it until an operator acts;
//! - creating a store file failed for lack of space, until that file (plus the
//!   reserve) would fit.
//!
//! Nothing here deletes anything: freeing space is retention's business, and it
//! never deletes unexpired segments unless `cleanFileForciblyEnable` is set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::error::{Result, StoreError};

/// One `statvfs` reading of the store's file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskReading {
    /// Percentage of the blocks in use, counting blocks reserved for root as
    /// used (the broker rarely runs as root).
    pub used_percent: u32,
    /// Bytes an unprivileged process may still allocate.
    pub free_bytes: u64,
    /// Size of the file system in bytes.
    pub total_bytes: u64,
}

impl DiskReading {
    /// Reads the file system holding `path`.
    pub fn of(path: &Path) -> std::io::Result<DiskReading> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        let unit = stat.fragment_size() as u64;
        let blocks = stat.blocks() as u64;
        let available = (stat.blocks_available() as u64).min(blocks);
        let used_percent = ((blocks - available) * 100)
            .checked_div(blocks)
            .map_or(0, |p| u32::try_from(p).unwrap_or(100));
        Ok(DiskReading {
            used_percent,
            free_bytes: available.saturating_mul(unit),
            total_bytes: blocks.saturating_mul(unit),
        })
    }
}

/// What the guard knows and decided, under one lock.
#[derive(Debug, Default)]
struct GuardState {
    reading: DiskReading,
    /// Why appends are refused; `None` while they are accepted.
    refusal: Option<String>,
}

/// Decides, from recent readings of the disk, whether the store accepts appends.
#[derive(Debug)]
pub struct DiskGuard {
    root: PathBuf,
    /// `diskSpaceWarningLevelRatio`: refuse appends above this use (percent).
    limit_percent: u32,
    /// Bytes kept free for ConsumeQueue and IndexFile files.
    reserve_bytes: u64,
    /// The fast path's copy of `state.refusal.is_some()`.
    full: AtomicBool,
    /// Size of a store file whose creation failed for lack of space (0: none
    /// failed since space last sufficed).
    short_of: AtomicU64,
    state: Mutex<GuardState>,
}

impl DiskGuard {
    /// A guard for the store at `root`, refusing appends above `limit_percent`
    /// and when less than `reserve_bytes` are free. It has not read the disk
    /// yet: call [`refresh`](Self::refresh).
    pub fn new(root: PathBuf, limit_percent: u32, reserve_bytes: u64) -> Self {
        DiskGuard {
            root,
            limit_percent,
            reserve_bytes,
            full: AtomicBool::new(false),
            short_of: AtomicU64::new(0),
            state: Mutex::new(GuardState::default()),
        }
    }

    /// Bytes kept free for the files built from the log.
    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Ok while appends are accepted; otherwise the [`StoreError::DiskFull`]
    /// to answer with, naming the disk, its use and the reason.
    pub fn check_writable(&self) -> Result<()> {
        if !self.full.load(Ordering::Acquire) {
            return Ok(());
        }
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &state.refusal {
            Some(why) => Err(self.full_error(&state.reading, why)),
            // Cleared between the two reads: accept.
            None => Ok(()),
        }
    }

    /// Whether appends are refused now.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// The last reading.
    pub fn reading(&self) -> DiskReading {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reading
    }

    /// Reads the disk and decides again whether appends are accepted, logging
    /// each change. A failed reading keeps the previous decision.
    pub fn refresh(&self) {
        let reading = match DiskReading::of(&self.root) {
            Ok(reading) => reading,
            Err(e) => {
                log::warn!("cannot measure the disk of {}: {e}", self.root.display());
                return;
            }
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let short_of = self.short_of.load(Ordering::Acquire);
        let refusal = refusal(&reading, self.limit_percent, self.reserve_bytes, short_of);
        if refusal.is_none() && short_of != 0 {
            // The file that did not fit would fit now; let the next append try.
            let _ =
                self.short_of
                    .compare_exchange(short_of, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        match (&state.refusal, &refusal) {
            (None, Some(why)) => log::error!(
                "{}: refusing sends until space is freed, reads go on",
                self.full_error(&reading, why)
            ),
            (Some(_), None) => log::warn!(
                "disk of {} has room again ({}% used, {} free): accepting sends",
                self.root.display(),
                reading.used_percent,
                human_bytes(reading.free_bytes)
            ),
            _ => {}
        }
        self.full.store(refusal.is_some(), Ordering::Release);
        state.reading = reading;
        state.refusal = refusal;
    }

    /// Creating a store file of `needed` bytes failed for lack of space:
    /// refuse appends until it would fit, and return the error to answer with.
    pub fn out_of_space(&self, needed: u64) -> StoreError {
        self.short_of.fetch_max(needed.max(1), Ordering::AcqRel);
        self.refresh();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let why = state.refusal.clone().unwrap_or_else(|| {
            // The disk emptied in between; the next append tries again.
            format!("a {} store file did not fit", human_bytes(needed))
        });
        self.full_error(&state.reading, &why)
    }

    fn full_error(&self, reading: &DiskReading, why: &str) -> StoreError {
        StoreError::DiskFull {
            path: self.root.clone(),
            used_percent: reading.used_percent,
            free: human_bytes(reading.free_bytes),
            why: why.to_owned(),
        }
    }
}

/// Why appends must be refused with this reading, if they must.
fn refusal(
    reading: &DiskReading,
    limit_percent: u32,
    reserve: u64,
    short_of: u64,
) -> Option<String> {
    if reading.used_percent >= limit_percent {
        return Some(format!(
            "{}% used is at or above the limit of {limit_percent}% (diskSpaceWarningLevelRatio)",
            reading.used_percent
        ));
    }
    if reading.free_bytes < reserve {
        return Some(format!(
            "{} free is less than the {} kept for consume queues and the index",
            human_bytes(reading.free_bytes),
            human_bytes(reserve)
        ));
    }
    if short_of > 0 && reading.free_bytes < short_of.saturating_add(reserve) {
        return Some(format!(
            "a new {} store file does not fit (with the {} kept for consume queues and the index)",
            human_bytes(short_of),
            human_bytes(reserve)
        ));
    }
    None
}

/// Bytes for a human: "512 B", "3.2 MiB", "1.0 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(used_percent: u32, free_mib: u64) -> DiskReading {
        DiskReading {
            used_percent,
            free_bytes: free_mib << 20,
            total_bytes: 100 << 20,
        }
    }

    #[test]
    fn refuses_at_the_limit_below_the_reserve_and_after_a_file_did_not_fit() {
        let reserve = 2 << 20;
        assert_eq!(refusal(&reading(89, 11), 90, reserve, 0), None);
        let why = refusal(&reading(90, 10), 90, reserve, 0).unwrap();
        assert!(
            why.contains("90% used") && why.contains("limit of 90%"),
            "{why}"
        );
        let why = refusal(&reading(50, 1), 90, reserve, 0).unwrap();
        assert!(
            why.contains("1.0 MiB free") && why.contains("2.0 MiB kept"),
            "{why}"
        );
        // A 4 MiB segment did not fit: refused until 4 MiB + the reserve are free.
        assert!(refusal(&reading(50, 5), 90, reserve, 4 << 20).is_some());
        assert_eq!(refusal(&reading(50, 6), 90, reserve, 4 << 20), None);
    }

    #[test]
    fn the_guard_names_the_disk_and_clears_once_space_suffices() {
        let dir = std::env::temp_dir();
        let guard = DiskGuard::new(dir.clone(), 100, 0);
        guard.refresh();
        assert!(guard.check_writable().is_ok());
        // A file larger than any disk cannot fit.
        let err = guard.out_of_space(u64::MAX / 2);
        assert!(guard.is_full());
        let text = err.to_string();
        assert!(text.contains(&dir.display().to_string()), "{text}");
        assert!(text.contains("% used"), "{text}");
        assert!(matches!(
            guard.check_writable(),
            Err(StoreError::DiskFull { .. })
        ));
        // Nothing frees space here, so it stays refused ...
        guard.refresh();
        assert!(guard.is_full());
        // ... until the file that failed would fit.
        guard.short_of.store(1, Ordering::Release);
        guard.refresh();
        assert!(!guard.is_full());
        assert!(guard.check_writable().is_ok());
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
