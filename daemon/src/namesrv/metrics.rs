//! What the NameServer's Prometheus endpoint shows: the process's figures,
//! the size of the route table, and the connections open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::handler::NamesrvHandler;
use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::{process, MetricsSource};

/// The NameServer, as a scrape sees it.
pub(crate) struct NamesrvMetrics {
    pub(crate) handler: Arc<NamesrvHandler>,
    pub(crate) connections: Arc<AtomicUsize>,
}

impl MetricsSource for NamesrvMetrics {
    fn render(&self, out: &mut Exposition) {
        process::render(out);
        let (clusters, brokers, topics) = self.handler.sizes();
        out.single(
            "mq_namesrv_clusters",
            Kind::Gauge,
            "Clusters with a registered broker.",
            clusters as f64,
        );
        out.single(
            "mq_namesrv_brokers",
            Kind::Gauge,
            "Broker addresses registered and alive.",
            brokers as f64,
        );
        out.single(
            "mq_namesrv_topics",
            Kind::Gauge,
            "Topics with a route.",
            topics as f64,
        );
        out.single(
            "mq_connections",
            Kind::Gauge,
            "Remoting connections open to the NameServer.",
            self.connections.load(Ordering::Relaxed) as f64,
        );
    }
}
