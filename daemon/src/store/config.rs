//! The store's settings, named and defaulted as RocketMQ's `MessageStoreConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushDiskType {
    /// Acknowledge once the bytes are in the mapping; a background flusher syncs
    /// them every `flush_interval` (RocketMQ's default).
    #[default]
    AsyncFlush,
    /// Acknowledge only once an `msync` covers the message (group commit).
    SyncFlush,
}

impl std::str::FromStr for FlushDiskType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ASYNC_FLUSH" => Ok(FlushDiskType::AsyncFlush),
            "SYNC_FLUSH" => Ok(FlushDiskType::SyncFlush),
            other => Err(format!(
                "flushDiskType must be ASYNC_FLUSH or SYNC_FLUSH, not {other:?}"
            )),
        }
    }
}

/// Settings of one message store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`: holds `commitlog/`, `consumequeue/`, `index/`,
    /// `checkpoint`, `abort` and `lock`.
    pub root: PathBuf,
    /// `mappedFileSizeCommitLog`: bytes per CommitLog segment (1 GiB).
    pub commit_log_file_size: usize,
    /// `mappedFileSizeConsumeQueue / 20`: entries per ConsumeQueue file (300,000).
    pub consume_queue_entries_per_file: usize,
    /// `maxHashSlotNum`: hash slots per IndexFile (5,000,000).
    pub index_hash_slots: u32,
    /// `maxIndexNum`: entries per IndexFile (20,000,000).
    pub index_max_entries: u32,
    /// `messageIndexEnable`: build the key index.
    pub message_index_enable: bool,
    /// `flushDiskType`.
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`: how often the async flusher runs (500 ms).
    pub flush_interval_commit_log: Duration,
    /// `flushCommitLogLeastPages`: the async flusher waits for this many dirty
    /// 4 KiB pages (4) ...
    pub flush_commit_log_least_pages: usize,
    /// `flushCommitLogThoroughInterval`: ... unless this long has passed (10 s).
    pub flush_commit_log_thorough_interval: Duration,
    /// `flushIntervalConsumeQueue`: how often ConsumeQueues, IndexFiles and the
    /// checkpoint are flushed (1 s).
    pub flush_interval_consume_queue: Duration,
    /// `syncFlushTimeout`: how long a SYNC_FLUSH append waits (5 s).
    pub sync_flush_timeout: Duration,
    /// `fileReservedTime`: CommitLog segments older than this are deleted (72 h).
    pub file_reserved_time: Duration,
    /// `deleteWhen`: hours of the day (local time) at which expired files are
    /// deleted, `;`-separated ("04").
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio`: above this disk use (percent) expired files are
    /// deleted at once, whatever the hour (75).
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceCleanForciblyRatio`: above this use (percent) retention may
    /// delete segments before they expire, if `clean_file_forcibly_enable` (85).
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskSpaceWarningLevelRatio`: above this use (percent) appends are refused (90).
    pub disk_space_warning_level_ratio: u32,
    /// `cleanFileForciblyEnable`: let retention delete unexpired segments,
    /// oldest first, when the disk is above `disk_space_clean_forcibly_ratio`
    /// or appends are refused. Off by default, unlike RocketMQ (on): deleting
    /// acknowledged messages nobody has read is worse than refusing sends,
    /// which producers answer by moving to another broker.
    pub clean_file_forcibly_enable: bool,
    /// `cleanResourceInterval`: how often retention runs (10 s).
    pub clean_resource_interval: Duration,
    /// `deleteFileBatchMax`: at most this many segments are deleted per round (10).
    pub delete_file_batch_max: usize,
    /// `maxMessageSize`: largest body accepted (4 MiB).
    pub max_message_size: usize,
    /// `messageDelayLevel`: delay of each level, for the tag code of scheduled
    /// messages ("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h").
    pub message_delay_level: String,
    /// This broker's `brokerIP1:listenPort`, written as STOREHOST in every record.
    pub store_host: SocketAddr,
    /// `accessMessageInMemoryMaxRatio`: a pull that leaves more than this share
    /// of physical memory (percent) unread behind the log's end suggests the
    /// slave to its consumer (40).
    pub access_message_in_memory_max_ratio: u32,
    /// `brokerRole=SLAVE`: the CommitLog is written only by replication, with
    /// the master's bytes at the master's offsets (see [`MessageStore::append_replica`](super::MessageStore::append_replica)).
    pub replica: bool,
}

impl StoreConfig {
    /// The defaults of RocketMQ 4.9 with the store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreConfig {
            root: root.into(),
            commit_log_file_size: 1 << 30,
            consume_queue_entries_per_file: 300_000,
            index_hash_slots: 5_000_000,
            index_max_entries: 20_000_000,
            message_index_enable: true,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval_commit_log: Duration::from_millis(500),
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval: Duration::from_secs(10),
            flush_interval_consume_queue: Duration::from_secs(1),
            sync_flush_timeout: Duration::from_secs(5),
            file_reserved_time: Duration::from_secs(72 * 3600),
            delete_when: "04".into(),
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            disk_space_warning_level_ratio: 90,
            clean_file_forcibly_enable: false,
            clean_resource_interval: Duration::from_secs(10),
            delete_file_batch_max: 10,
            max_message_size: 4 * 1024 * 1024,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
                .into(),
            store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
            access_message_in_memory_max_ratio: 40,
            replica: false,
        }
    }

    /// The hours of the day listed in `delete_when`.
    pub fn delete_hours(&self) -> Result<Vec<u32>, String> {
        self.delete_when
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<u32>() {
                Ok(h) if h < 24 => Ok(h),
                _ => Err(format!(
                    "deleteWhen: {s:?} is not an hour of the day (00-23)"
                )),
            })
            .collect()
    }

    /// The delay of each level (index 0 is level 1), parsed from `message_delay_level`.
    pub fn delay_levels(&self) -> Result<Vec<Duration>, String> {
        self.message_delay_level
            .split_whitespace()
            .map(|item| {
                let split = item.len().saturating_sub(1);
                let (num, unit) = item.split_at(split);
                let n: u64 = num
                    .parse()
                    .map_err(|_| format!("messageDelayLevel: bad level {item:?}"))?;
                let secs = match unit {
                    "s" => n,
                    "m" => n * 60,
                    "h" => n * 3600,
                    "d" => n * 86400,
                    _ => {
                        return Err(format!(
                            "messageDelayLevel: bad unit in {item:?} (s, m, h or d)"
                        ))
                    }
                };
                Ok(Duration::from_secs(secs))
            })
            .collect()
    }

    /// Bytes per ConsumeQueue file.
    pub fn consume_queue_file_size(&self) -> usize {
        self.consume_queue_entries_per_file * super::consume_queue::ENTRY_SIZE
    }

    /// Bytes of one IndexFile.
    pub fn index_file_size(&self) -> usize {
        super::index_file::file_size(self.index_hash_slots, self.index_max_entries)
            .unwrap_or(usize::MAX)
    }

    /// Free space the disk guard keeps for the files the dispatcher creates,
    /// so that every acknowledged message can reach its ConsumeQueue and the
    /// index: two ConsumeQueue files (two queues rolling over at once), one
    /// IndexFile, and 1 MiB for the checkpoint and the broker's JSON files.
    pub fn derived_files_reserve(&self) -> u64 {
        let index = if self.message_index_enable {
            self.index_file_size() as u64
        } else {
            0
        };
        (2 * self.consume_queue_file_size() as u64)
            .saturating_add(index)
            .saturating_add(1 << 20)
    }

    /// Checks the settings against each other; the store refuses to open otherwise.
    pub fn validate(&self) -> Result<(), String> {
        self.delete_hours()?;
        self.delay_levels()?;
        if self.commit_log_file_size < 4096 {
            return Err("mappedFileSizeCommitLog must be at least 4096".into());
        }
        if self.consume_queue_entries_per_file == 0 {
            return Err("mappedFileSizeConsumeQueue must hold at least one entry".into());
        }
        if self.index_hash_slots == 0 || self.index_max_entries < 2 {
            return Err("maxHashSlotNum must be > 0 and maxIndexNum > 1".into());
        }
        if !(self.disk_max_used_space_ratio <= self.disk_space_clean_forcibly_ratio
            && self.disk_space_clean_forcibly_ratio <= self.disk_space_warning_level_ratio
            && self.disk_space_warning_level_ratio <= 100)
        {
            return Err("disk ratios must rise: diskMaxUsedSpaceRatio <= clean forcibly <= warning level <= 100".into());
        }
        if self.access_message_in_memory_max_ratio > 100 {
            return Err("accessMessageInMemoryMaxRatio is a percentage (0-100)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delay_levels_and_delete_hours() {
        let mut cfg = StoreConfig::new("/tmp/x");
        let levels = cfg.delay_levels().unwrap();
        assert_eq!(levels.len(), 18);
        assert_eq!(levels[0], Duration::from_secs(1));
        assert_eq!(levels[17], Duration::from_secs(7200));
        assert_eq!(cfg.delete_hours().unwrap(), vec![4]);
        cfg.delete_when = "04;16".into();
        assert_eq!(cfg.delete_hours().unwrap(), vec![4, 16]);
        cfg.delete_when = "25".into();
        assert!(cfg.validate().is_err());
    }
}
