//! The hold loop (RocketMQ's PullRequestHoldService): answers parked pulls
//! ([`state::hold`](crate::broker::state::hold)) when their queue gets a
//! message or their time runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::handle::pull;
use crate::broker::Broker;

/// Answers parked pulls as they become ready, until shutdown.
pub(crate) async fn hold_loop(broker: Arc<Broker>) {
    loop {
        let stop = broker
            .shutdown
            .wait_or(broker.holds.wait(Duration::from_millis(500)))
            .await;
        if stop {
            return;
        }
        let ready = broker.holds.take_ready(Instant::now(), |topic, queue| {
            broker.store.max_offset(topic, queue)
        });
        for (held, _) in ready {
            let b = broker.clone();
            // Each answer on its own task, so one slow client does not delay
            // others; detached, as the answer is all it does.
            broker
                .ex
                .spawn(async move { pull::answer_held(&b, &held).await })
                .detach();
        }
    }
}
