//! RocketMQ's wire and record formats, shared by the daemon and the client.
//!
//! - [`message`]: the stored-message record (CommitLog layout, PULL bodies).
//! - [`properties`]: the message properties string and Java's string hash.

pub mod message;
pub mod properties;
