//! The statistics sampler: once a second it takes the samples the broker's
//! rates are computed from (see [`crate::broker::stats`]).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;

/// Runs until shutdown.
pub(crate) async fn sample_loop(broker: Arc<Broker>) {
    loop {
        if broker.shutdown.sleep(Duration::from_secs(1)).await {
            return;
        }
        broker.stats.sample(mq_protocol::time::now_ms());
    }
}
