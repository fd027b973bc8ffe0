//! The broker's tables.

pub mod clients;
pub mod groups;
pub mod hold;
pub mod offsets;
pub mod topics;
