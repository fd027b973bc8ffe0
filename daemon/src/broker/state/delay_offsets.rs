//! How far each delay level has delivered (RocketMQ's ScheduleMessageService
//! offset table), persisted to `config/delayOffset.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::broker::error::BrokerError;
use crate::broker::persist::ConfigFile;
use crate::store::StoreError;

/// How far each delay level has delivered, as `delayOffset.json` holds it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DelayOffsets {
    offset_table: BTreeMap<i32, i64>,
}

/// Delay-level delivery offsets, persisted.
pub(crate) struct ScheduleOffsets {
    table: Mutex<BTreeMap<i32, i64>>,
    dirty: AtomicBool,
    file: ConfigFile,
}

impl ScheduleOffsets {
    /// Loads `config/delayOffset.json` under `root`.
    pub(crate) fn load(root: &Path) -> Result<Self, BrokerError> {
        let file = ConfigFile::new(root, "delayOffset.json");
        let table = file
            .load(|b| {
                let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
                mq_protocol::fastjson::from_str::<DelayOffsets>(text).map_err(|e| e.to_string())
            })
            .map_err(BrokerError::LoadTable)?
            .map(|d| d.offset_table)
            .unwrap_or_default();
        Ok(ScheduleOffsets {
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            file,
        })
    }

    /// The next offset of a level's queue to deliver.
    pub(crate) fn get(&self, level: i32) -> i64 {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&level)
            .copied()
            .unwrap_or(0)
    }

    /// Records how far a level delivered.
    pub(crate) fn set(&self, level: i32, offset: i64) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(level, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// GET_ALL_DELAY_OFFSET's body.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let offsets = DelayOffsets {
            offset_table: self
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        mq_protocol::fastjson::to_vec(&offsets).expect("integers always serialise")
    }

    /// A slave takes its master's table (GET_ALL_DELAY_OFFSET's body) in
    /// place of its own.
    pub(crate) fn replace_from(&self, body: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        let offsets: DelayOffsets =
            mq_protocol::fastjson::from_str(text).map_err(|e| e.to_string())?;
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if *table != offsets.offset_table {
            *table = offsets.offset_table;
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Writes the file if anything changed.
    pub(crate) fn persist(&self) -> Result<(), StoreError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.file
            .save_with(|| self.encode())
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }
}
