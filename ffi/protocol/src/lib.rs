//! mq-protocol: RocketMQ's wire and record formats, as pure functions over
//! bytes with every length checked; the one codec the daemon and the client
//! share.
//!
//! - [`acl`]: signing requests for RocketMQ's plain ACL (HMAC-SHA1, Base64).
//! - [`frame`]: the frame and the `RemotingCommand` (both header serializations;
//!   the JSON one read and written by a scanner, `json_header`).
//! - [`frame_buffer`]: a connection's read buffer, cut into frames.
//! - [`codes`]: request and response codes.
//! - [`ext_fields`]: a command's custom header (extFields), compactly stored.
//! - [`headers`]: typed custom headers of each request and response.
//! - [`body`]: the JSON bodies of remoting commands (routes, heartbeats, offsets…).
//! - [`fastjson`]: reading and writing fastjson's non-standard JSON (bare and object map keys).
//! - [`message`]: the stored-message record (CommitLog layout, PULL bodies).
//! - [`properties`]: the message properties string and Java's string hash.
//! - [`topics`]: topic names with a meaning (TBW102, retry and dead-letter topics).
//! - [`time`]: milliseconds since the epoch, and their UTC calendar date.

#![warn(missing_docs)]

pub mod acl;
pub mod body;
pub mod codes;
pub mod ext_fields;
pub mod fastjson;
pub mod frame;
pub mod frame_buffer;
pub mod headers;
mod json_header;
pub mod message;
pub mod properties;
pub mod time;
pub mod topics;
