//! The broker's background loops, each spawned by
//! [`Broker::start`](crate::broker::Broker::start) and ended by shutdown.
//!
//! - [`register`]: registration with every NameServer.
//! - [`hold`]: answers parked pulls (long polling).
//! - [`schedule`]: delivers delayed messages when due.
//! - [`transaction_check`]: asks producers about undecided half messages.
//! - [`housekeeping`]: persists offsets, expires silent clients and stale locks.
//! - [`slave_sync`]: a slave copies its master's topics, offsets and groups.
//! - [`stats`]: samples the statistics that rates are computed from.

pub(crate) mod hold;
pub(crate) mod housekeeping;
pub(crate) mod register;
pub(crate) mod schedule;
pub(crate) mod slave_sync;
pub(crate) mod stats;
pub(crate) mod transaction_check;
