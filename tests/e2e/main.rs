//! The end-to-end tests: every test that starts a NameServer or a broker,
//! in this process or as the freshly built `mqd`, in one test binary that
//! builds once. It is a test target of `mq-daemon` (see `daemon/Cargo.toml`)
//! so that `CARGO_BIN_EXE_mqd` is always the `mqd` of this build.
//!
//! Run one area with `cargo test -p mq-daemon --test e2e <module>::`.

mod acl;
mod broker;
mod broker_conf;
mod capi;
mod client_consumer;
mod client_producer;
mod client_transaction;
mod descriptors;
mod disk_full;
mod install;
mod java_compat;
mod metrics;
mod mqadmin;
mod mqctl;
mod multi_namesrv;
mod namesrv;
mod replication;
mod settings;
mod support;
mod systemd;
