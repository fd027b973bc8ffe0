//! The Prometheus endpoint (`metricsPort`, off by default) of the broker and
//! the NameServer.
//!
//! - [`histogram`]: latency histograms recorded without locks.
pub mod histogram;
