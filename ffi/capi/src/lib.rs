//! libmq: the C ABI of mq's Rust client (`libmq.so.1`, `libmq.a`, and
//! `include/mq.h`, which cbindgen renders from this crate's exports and their
//! doc comments).
//!
//! The model, as `include/mq.h` states it to C programmers: libmq never calls
//! application code. There are no function pointers in the ABI; async-send
//! reports, push-consumer batches and transaction check-backs are handed out
//! by `*_poll` calls on the application's own threads, and a push batch is
//! settled by an explicit `mq_batch_ack`. Every export goes through one
//! `ffi!` boundary (panics caught, a forked child refused, NULL checked) and
//! returns an `mq_status_t` from a table whose numbers never change.
//!
//! - `ffi`: the boundary macro, the fork check, pointer and string helpers.
//! - `status`: the status table, the thread-local last error, names and texts.
//! - `version`: the version macros and functions.
//! - `config`: `mq_config_t`, string key/value settings copied by every `_new`.
//! - `message`: `mq_message_t` (built or received) and `mq_message_view_t`.
//! - `producer`: `mq_producer_t`: sync, ordered, one-way, batch and async sends.
//! - `send_result`: `mq_send_result_t` and the async `mq_send_report_t`.
//! - `txn`: `mq_txn_producer_t`, `mq_txn_t` (a half message) and
//!   `mq_txn_check_t` (a check-back to answer).
//! - `push_consumer`: `mq_push_consumer_t` and the bridge that hands the
//!   core's listener calls to pollers.
//! - `batch`: `mq_batch_t`, messages from either consumer, acked for push.
//! - `pull_consumer`: `mq_pull_consumer_t`, the lite pull consumer.
//! - `queue_list`: `mq_queue_list_t`, queues to assign and assignments.
//! - `reply`: a one-shot answer from an application thread to a library
//!   thread that waits with a deadline (push acks, check-back answers).
//! - `client`: starting the client instance a handle runs on; `MQ_LOG`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// The C names of the types (`mq_config_t`) are the Rust names, so that
// cbindgen writes them as they are and a reader finds them in both.
#![allow(non_camel_case_types)]

#[macro_use]
mod ffi;

// The modules in the header's order (cbindgen keeps the order it reads
// them in): errors and version first, then one handle after another.
mod status;
// Versions.
mod version;
// Settings.
mod config;
// Messages.
mod message;
// Producers.
mod producer;
// Their results.
mod send_result;
// Transactions.
mod txn;
// Push consumers.
mod push_consumer;
// Batches.
mod batch;
// Pull consumers.
mod pull_consumer;
// Queue lists.
mod queue_list;
// Internals without exports.
mod client;
mod reply;

#[cfg(test)]
mod tests;
