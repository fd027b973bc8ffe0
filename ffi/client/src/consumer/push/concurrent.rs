//! Concurrent consumption: `consume_threads` workers take batches in the
//! order they were pulled, one listener call each. A batch's offsets leave
//! its process queue when done, so a queue's committed offset is its oldest
//! message still in process; one that could not be sent back stays there and
//! is consumed again locally after a while.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_channel::Receiver;

use mq_protocol::body::{MessageModel, MessageQueue};

use super::listener::{self, ConsumeStatus};
use super::process_queue::ProcessQueue;
use super::send_back::send_back;
use super::state::{ConsumeRequest, Inner};
use crate::message::MessageExt;

/// How long a failed send-back waits before being consumed again locally.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Concurrent mode: one of `consume_threads` tasks taking batches in arrival
/// order. Messages that could not be sent back stay in their process queue
/// (so the offset cannot pass them) and are queued again after a while.
pub(super) async fn consume_worker(weak: Weak<Inner>, requests: Receiver<ConsumeRequest>) {
    while let Ok(request) = requests.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        let ConsumeRequest { mq, pq, msgs } = request;
        let failed = consume_once(&inner, &mq, &pq, msgs).await;
        if failed.is_empty() {
            continue;
        }
        let again = inner.requests.0.clone();
        // Detached: it ends after the delay; a closed channel drops the batch
        // (nothing is consumed after shutdown).
        inner.instance.spawn_detached(async move {
            async_io::Timer::after(LOCAL_RETRY_DELAY).await;
            let _ = again
                .send(ConsumeRequest {
                    mq,
                    pq,
                    msgs: failed,
                })
                .await;
        });
    }
}

/// One listener call for `msgs`, then the offset; returns the messages to
/// consume again locally.
async fn consume_once(
    inner: &Inner,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    msgs: Vec<MessageExt>,
) -> Vec<MessageExt> {
    let permits = inner.permits.clone();
    let _permit = permits.acquire_arc().await;
    // Checked under the permit: shutdown takes every permit after closing.
    if inner.is_closed() || pq.is_dropped() {
        return Vec::new();
    }
    let status = listener::call(inner, msgs.clone()).await;
    let mut failed = Vec::new();
    let mut done: Vec<i64> = Vec::with_capacity(msgs.len());
    match status {
        ConsumeStatus::Success => done.extend(msgs.iter().map(|m| m.queue_offset)),
        ConsumeStatus::Later if inner.config.message_model == MessageModel::Broadcasting => {
            // As Java: broadcasting has no retry topic; the messages are dropped.
            log::warn!(
                "{}: broadcasting consumer returned Later; {} message(s) dropped",
                inner.config.group,
                msgs.len()
            );
            done.extend(msgs.iter().map(|m| m.queue_offset));
        }
        ConsumeStatus::Later => {
            for m in msgs {
                match send_back(inner, &m).await {
                    Ok(()) => done.push(m.queue_offset),
                    Err(e) => {
                        log::warn!("{}: cannot send {} back: {e}", inner.config.group, m.msg_id);
                        let mut m = m;
                        m.reconsume_times += 1;
                        failed.push(m);
                    }
                }
            }
        }
    }
    let offset = pq.remove(&done);
    if offset >= 0 && !pq.is_dropped() {
        inner.store.update(mq, offset, true);
    }
    failed
}
