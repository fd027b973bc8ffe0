//! The broker's background loops.

pub mod register;
pub mod schedule;
