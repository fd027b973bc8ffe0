//! Orderly consumption: one loop per queue hands its messages to the
//! listener one batch at a time, in offset order, while the queue's broker
//! lock is held. `Later` suspends the queue and retries the same messages; a
//! message past `max_reconsume_times` goes to the dead-letter queue instead.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mq_protocol::body::MessageQueue;

use super::listener::{self, ConsumeStatus};
use super::process_queue::ProcessQueue;
use super::send_back::{resend_to_retry, restore_retry_topic};
use super::state::Inner;

/// How long an orderly queue is suspended after `Later`
/// (`suspendCurrentQueueTimeMillis`).
const ORDERLY_SUSPEND: Duration = Duration::from_secs(1);

/// Orderly mode: hands one queue's messages to the listener one batch at a
/// time, in offset order, while the queue's lock is held.
pub(super) async fn orderly_loop(weak: Weak<Inner>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() || pq.is_dropped() {
            return;
        }
        if inner.needs_locks() && !pq.lock_is_fresh() {
            drop(inner);
            pq.wait_wake(Duration::from_millis(500)).await;
            continue;
        }
        let guard = pq.consume_lock.lock().await;
        let batch = pq.take(inner.config.consume_batch_max_size);
        if batch.is_empty() {
            drop(guard);
            drop(inner);
            pq.wait_wake(Duration::from_secs(1)).await;
            continue;
        }
        let permit = inner.permits.acquire_arc().await;
        if inner.is_closed() || pq.is_dropped() {
            pq.consume_again(batch);
            return;
        }
        let mut shown = batch.clone();
        restore_retry_topic(&inner.config.group, &mut shown);
        let status = listener::call(&inner, shown).await;
        let suspend = match status {
            ConsumeStatus::Success => None,
            ConsumeStatus::Later => {
                // Java's checkReconsumeTimes: past the limit a message is
                // re-sent (to the DLQ, by the broker); otherwise, or if that
                // fails, the whole batch is consumed again after a pause.
                let mut suspend = false;
                let mut again = Vec::with_capacity(batch.len());
                for mut m in batch {
                    if m.reconsume_times >= inner.config.max_reconsume_times {
                        let mut original = m.clone();
                        restore_retry_topic(
                            &inner.config.group,
                            std::slice::from_mut(&mut original),
                        );
                        if let Err(e) = resend_to_retry(&inner, &original, m.reconsume_times).await
                        {
                            log::warn!(
                                "{}: cannot dead-letter {}: {e}",
                                inner.config.group,
                                m.msg_id
                            );
                            suspend = true;
                            m.reconsume_times += 1;
                        }
                    } else {
                        suspend = true;
                        m.reconsume_times += 1;
                    }
                    again.push(m);
                }
                suspend.then_some(again)
            }
        };
        match suspend {
            None => {
                let offset = pq.commit();
                if offset >= 0 && !pq.is_dropped() {
                    inner.store.update(&mq, offset, false);
                }
                drop(permit);
                drop(guard);
            }
            Some(again) => {
                pq.consume_again(again);
                drop(permit);
                drop(guard);
                drop(inner);
                async_io::Timer::after(ORDERLY_SUSPEND).await;
            }
        }
    }
}
