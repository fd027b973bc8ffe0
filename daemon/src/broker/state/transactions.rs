//! Which half messages are decided: the half queue offsets that have an op
//! record. The op queue is the durable form; the check loop reads it back at
//! start ([`task::transaction_check`](crate::broker::task::transaction_check)).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// Half queue offsets that have an op record, learnt from the op queue.
#[derive(Default)]
pub(crate) struct TransactionState {
    resolved: Mutex<BTreeSet<i64>>,
}

impl TransactionState {
    /// Whether the half message at this half queue offset is decided.
    pub(crate) fn is_resolved(&self, half_offset: i64) -> bool {
        self.resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&half_offset)
    }

    /// Marks the half message at this half queue offset decided.
    pub(crate) fn resolve(&self, half_offset: i64) {
        self.resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(half_offset);
    }
}
