//! `mqctl`: the command-line tool of mq, as a library that the `mqctl`
//! binary wires to the process's standard streams and that tests run
//! in-process with streams of their own. One file per verb, each a struct
//! whose doc comments are its help text and whose `run` does the work:
//!
//! - [`produce`]: send messages from arguments, standard input or a generator.
//! - [`consume`]: receive messages with a pull consumer.
//! - [`topic`]: create, delete, list, route and stats of topics.
//! - [`cluster`]: the brokers of every cluster, with their runtime counters.
//! - [`broker`]: each master's statistics (rates, totals, latency, disk).
//! - [`group`]: a consumer group's progress and its consumers online.
//! - [`offset`]: reset a group's offsets to a point in time.
//! - [`query`]: find messages by key or by id.
//! - [`bench`](mod@bench): produce and consume load with throughput and latency.
//!
//! Around them:
//!
//! - [`cli`]: [`run`], from a command line to an exit code (0, 1 or 2), every
//!   failure reported as one `mqctl: <error>` line.
//! - [`console`]: [`Console`], the standard streams of one run and whether each
//!   is a terminal.
//! - [`panic`]: a panic is one line and exit 1; [`panic_hook`] for the binary.
//! - [`output`] (exit codes, formats, tables), [`admin`] (admin requests),
//!   [`cpu`] (CPU time of a process, for `bench`),
//!   [`histogram`] (latency histogram of `bench`).

mod admin;
mod bench;
mod broker;
mod cli;
mod cluster;
mod console;
mod consume;
mod cpu;
mod group;
mod histogram;
mod offset;
mod output;
mod panic;
mod produce;
mod query;
mod topic;

pub use cli::run;
pub use console::{Console, Terminals};
pub use panic::hook as panic_hook;
