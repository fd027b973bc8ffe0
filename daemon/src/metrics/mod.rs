//! The Prometheus endpoint of the broker and the NameServer: off unless
//! `metricsPort` is set, then `GET /metrics` on that port answers with
//! Prometheus' text format (version 0.0.4).
//!
//! The broker serves the metric names and labels of Apache's
//! `rocketmq-exporter` (so that the Grafana dashboards built for it work
//! unchanged) plus mq's own; both serve the process's figures
//! (`process_cpu_seconds_total`, ...). What a scrape shows is computed when it
//! asks: nothing runs between scrapes.
//!
//! - [`exposition`]: the text format.
//! - [`histogram`]: latency histograms recorded without locks.
//! - [`http`]: the GET-only HTTP/1.1 responder.
//! - [`process`]: CPU, memory and descriptors of this process, from `/proc`.

pub mod exposition;
pub mod histogram;
pub mod http;
pub mod process;

pub use exposition::Exposition;

/// What an endpoint shows.
pub trait MetricsSource: Send + Sync + 'static {
    /// Writes every metric, as they are now.
    fn render(&self, out: &mut Exposition);
}
