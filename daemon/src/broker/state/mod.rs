//! The broker's tables: what it knows besides the messages themselves. Each
//! locks itself; none is held across an `.await`.
//!
//! - [`topics`]: topic configurations (`config/topics.json`).
//! - [`offsets`]: committed consumer offsets (`config/consumerOffset.json`).
//! - [`groups`]: subscription groups (`config/subscriptionGroup.json`).
//! - [`delay_offsets`]: how far each delay level delivered (`config/delayOffset.json`).
//! - [`clients`]: producers and consumers known from heartbeats.
//! - [`locks`]: queue locks of orderly consumers.
//! - [`hold`]: parked pulls (long polling).
//! - [`transactions`]: which half messages are decided.

pub(crate) mod clients;
pub(crate) mod delay_offsets;
pub(crate) mod groups;
pub(crate) mod hold;
pub(crate) mod locks;
pub(crate) mod offsets;
pub(crate) mod topics;
pub(crate) mod transactions;
