//! What the end-to-end tests share.

pub mod broker;
pub mod client;
pub mod tempdir;
