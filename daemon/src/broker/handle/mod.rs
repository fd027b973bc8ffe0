//! The broker's request handlers.

pub mod admin;
pub mod clients;
pub mod pull;
pub mod send;
