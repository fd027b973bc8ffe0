//! The master's side of replication (RocketMQ's HAService, HAConnection and
//! GroupTransferService): the HA port, a link per slave, and the wait of a
//! SYNC_MASTER's sends.
//!
//! A link is two tasks on one connection. The reader takes the slave's
//! reports: the first says where the slave's log ends, each later one
//! acknowledges everything before it ([`GroupTransfer::ack`] releases the
//! sends it covers). The writer waits for the first report, then streams the
//! CommitLog from there in frames of at most `haTransferBatchSize` bytes, each
//! within one segment, reading the published bytes of the mapped segments
//! directly; with nothing to send it waits on the store's doorbell (rung by
//! every append) and sends an empty frame every `haSendHeartbeatInterval`.
//! Nothing on the append path waits for a link: a slow slave only falls
//! behind, and an ASYNC_MASTER never waits for it at all.
//!
//! Where a link starts, from the slave's first report R (the master's log
//! ends at M; it ended at E0 when this process opened the store):
//!
//! - R = 0, an empty slave: at the start of the master's last segment
//!   (RocketMQ's rule; older segments stay the master's alone).
//! - R beyond E0 and beyond anything this process has sent: the slave holds
//!   bytes this master does not have (it lost them, e.g. in a power failure,
//!   and may since have written other bytes there). RocketMQ 4.x closes the
//!   link when R > M and cannot notice the other case. mq sends an empty
//!   frame at E0 first, which tells an mq slave to cut its log back to E0
//!   (it logs what it drops), then streams from E0. Such a report
//!   acknowledges nothing.
//! - Otherwise at R.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_lite::io::AsyncWriteExt;

use super::transfer::GroupTransfer;
use super::wire::{self, HEADER_LEN, REPORT_LEN};
use super::HaConfig;
use crate::shutdown::Shutdown;
use crate::store::MessageStore;

/// Most slave links a master holds at once; more are closed at accept.
const MAX_LINKS: usize = 16;

/// How a SYNC_MASTER's send fared with its slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// A slave acknowledged it.
    Done,
    /// No slave acknowledged it within `slaveTimeout` (FLUSH_SLAVE_TIMEOUT).
    Timeout,
    /// No slave in step: none connected, or the nearest further behind than
    /// `haSlaveFallbehindMax` (SLAVE_NOT_AVAILABLE). Nothing was waited for.
    NotAvailable,
}

/// What the master knows of one slave link.
#[derive(Debug, Clone)]
pub struct SlaveInfo {
    /// The slave's address (of its HA connection).
    pub addr: SocketAddr,
    /// The offset it last acknowledged (-1 before its first report).
    pub acked: i64,
}

/// One slave link's shared state.
struct Link {
    addr: SocketAddr,
    /// Last report (-1 until the first).
    acked: AtomicI64,
}

/// The master's replication service.
pub struct HaService {
    store: Arc<MessageStore>,
    config: HaConfig,
    /// The CommitLog's end when the store opened: a slave's bytes past it
    /// came from before this process started and may be lost here.
    opened_at: i64,
    /// The furthest offset this process has sent to any slave.
    streamed: AtomicI64,
    /// Acknowledged offsets and the sends waiting for them.
    transfer: GroupTransfer,
    /// Live links by id.
    links: Mutex<BTreeMap<u64, Arc<Link>>>,
    next_id: AtomicU64,
}

impl HaService {
    /// A service for `store`, which must have just opened (its end is taken
    /// as where this process's log began).
    pub fn new(store: Arc<MessageStore>, config: HaConfig) -> Arc<Self> {
        let opened_at = store.commit_log_range().1;
        Arc::new(HaService {
            store,
            config,
            opened_at,
            streamed: AtomicI64::new(opened_at),
            transfer: GroupTransfer::default(),
            links: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Accepts slaves on `listener` until shutdown; each link runs on `ex`.
    pub async fn serve(
        self: Arc<Self>,
        ex: Arc<async_executor::Executor<'static>>,
        listener: TcpListener,
        shutdown: Shutdown,
    ) {
        // Expires the sends waiting for a slave. It runs as long as the
        // executor does, past the shutdown signal like the links, so that a
        // send still waiting then gets its answer.
        let sweeping = Arc::downgrade(&self);
        ex.spawn(async move {
            loop {
                async_io::Timer::after(super::transfer::SWEEP_INTERVAL).await;
                match sweeping.upgrade() {
                    Some(ha) => ha.transfer.expire(Instant::now()),
                    None => return,
                }
            }
        })
        .detach();
        loop {
            let accepted =
                futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    shutdown.wait().await;
                    None
                })
                .await;
            let (stream, addr) = match accepted {
                None => return,
                Some(Ok(pair)) => pair,
                Some(Err(e)) => {
                    log::warn!("HA accept: {e}; retrying in 100 ms");
                    if shutdown.sleep(Duration::from_millis(100)).await {
                        return;
                    }
                    continue;
                }
            };
            if self.links().len() >= MAX_LINKS {
                log::warn!("HA: refusing slave {addr}: {MAX_LINKS} links are open");
                continue;
            }
            log::info!("HA: slave {addr} connected");
            // Latency matters: a SYNC_MASTER's sends wait for the round trip.
            let _ = stream.set_nodelay(true);
            // Each link ends on its own (error, silence, or the process
            // ending): it outlives the shutdown signal on purpose, so that
            // sends still in flight then get their slave's acknowledgement.
            ex.spawn(self.clone().link(stream, addr)).detach();
        }
    }

    /// Whether a send ending at `end` may wait for a slave (RocketMQ's
    /// isSlaveOK): a slave has reported, and the furthest acknowledgement is
    /// less than `haSlaveFallbehindMax` behind `end`.
    pub fn is_slave_ok(&self, end: i64) -> bool {
        let reported = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|l| l.acked.load(Ordering::Acquire) >= 0);
        reported && end - self.transfer.acked() < self.config.slave_fallbehind_max
    }

    /// What a SYNC_MASTER's send ending at `end` waits for: a slave's
    /// acknowledgement, up to `slaveTimeout`.
    pub async fn wait_replicated(&self, end: i64) -> ReplicaStatus {
        if !self.is_slave_ok(end) {
            return ReplicaStatus::NotAvailable;
        }
        if self.transfer.wait(end, self.config.slave_timeout).await {
            ReplicaStatus::Done
        } else {
            ReplicaStatus::Timeout
        }
    }

    /// The furthest offset a slave has acknowledged (push2SlaveMaxOffset).
    pub fn acked(&self) -> i64 {
        self.transfer.acked()
    }

    /// The slaves linked now.
    pub fn links(&self) -> Vec<SlaveInfo> {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|l| SlaveInfo {
                addr: l.addr,
                acked: l.acked.load(Ordering::Acquire),
            })
            .collect()
    }

    /// Where to stream from for a slave whose first report is `reported`,
    /// and whether it must first be told to cut back (see the module doc).
    fn start_for(&self, reported: i64) -> (i64, bool) {
        let end = self.store.commit_log_range().1;
        if reported == 0 {
            let size = self.store.config().commit_log_file_size as i64;
            return (end - end % size, false);
        }
        let trusted = self.opened_at.max(self.streamed.load(Ordering::Acquire));
        if reported > trusted || reported > end {
            (self.opened_at, true)
        } else {
            (reported, false)
        }
    }

    /// Runs one link until it fails or goes silent.
    async fn link(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(Link {
            addr,
            acked: AtomicI64::new(-1),
        });
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, link.clone());
        let (start_tx, start_rx) = async_channel::bounded(1);
        let reader = self.read_reports(stream.clone(), &link, start_tx);
        let writer = self.write_frames(stream, addr, start_rx);
        futures_lite::future::or(reader, writer).await;
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        log::warn!("HA: slave {addr} disconnected");
    }

    /// The reader half: takes reports until the slave hangs up, falls silent
    /// for `haHousekeepingInterval`, or reports more than the log holds.
    async fn read_reports(
        &self,
        mut stream: TcpStream,
        link: &Link,
        start: async_channel::Sender<(i64, bool)>,
    ) {
        let addr = link.addr;
        let mut buf = [0u8; 64 * REPORT_LEN];
        let mut filled = 0;
        let silence = self.config.housekeeping_interval;
        loop {
            let read = super::read_within(&mut stream, &mut buf[filled..], silence).await;
            let n = match read {
                None => {
                    log::warn!("HA: nothing from slave {addr} for {silence:?}; closing its link");
                    return;
                }
                Some(Ok(0)) => return,
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    log::warn!("HA: reading from slave {addr}: {e}");
                    return;
                }
            };
            filled += n;
            let Some((offset, used)) = wire::last_report(&buf[..filled]) else {
                continue;
            };
            buf.copy_within(used..filled, 0);
            filled -= used;
            if link.acked.load(Ordering::Acquire) < 0 {
                let (from, cut) = self.start_for(offset);
                log::info!(
                    "HA: slave {addr} holds the commit log up to {offset}; streaming from {from}{}",
                    if cut {
                        " after telling it to cut back (it is ahead of what this master recovered)"
                    } else {
                        ""
                    }
                );
                // The writer takes it once; it is gone only if the link is.
                let _ = start.try_send((from, cut));
                link.acked
                    .store(if cut { from } else { offset }, Ordering::Release);
                if !cut {
                    self.transfer.ack(offset);
                }
                continue;
            }
            let end = self.store.commit_log_range().1;
            if offset > end {
                log::warn!(
                    "HA: slave {addr} reports offset {offset}, past this log's end {end}; closing its link"
                );
                return;
            }
            link.acked.store(offset, Ordering::Release);
            self.transfer.ack(offset);
        }
    }

    /// The writer half: streams the log from where the reader says.
    async fn write_frames(
        &self,
        mut stream: TcpStream,
        addr: SocketAddr,
        start: async_channel::Receiver<(i64, bool)>,
    ) {
        let Ok((mut next, cut)) = start.recv().await else {
            return;
        };
        let heartbeat = self.config.send_heartbeat_interval;
        let batch = self.config.transfer_batch_size;
        let mut frame = Vec::with_capacity(HEADER_LEN + batch);
        let mut last_write = Instant::now();
        // A heartbeat at once tells a slave that is ahead where to cut back
        // (when there is no data to send it at once, which would tell it too).
        let mut heartbeat_now = cut;
        loop {
            frame.clear();
            if let Some(data) = self.store.replication_data(next, batch) {
                frame.extend_from_slice(&wire::encode_header(next, data.len()));
                frame.extend_from_slice(&data);
                next += data.len() as i64;
            } else {
                let min = self.store.commit_log_range().0;
                if next < min {
                    log::error!(
                        "HA: slave {addr} needs the commit log from {next}, but this master's \
                         starts at {min} (retention deleted the rest); it cannot catch up"
                    );
                    return;
                }
                let idle = last_write.elapsed();
                if idle < heartbeat && !heartbeat_now {
                    let store = &self.store;
                    store
                        .new_data()
                        .wait_until(|| store.commit_log_range().1 > next, heartbeat - idle)
                        .await;
                    continue;
                }
                frame.extend_from_slice(&wire::encode_header(next, 0));
            }
            if let Err(e) = stream.write_all(&frame).await {
                log::warn!("HA: writing to slave {addr}: {e}");
                return;
            }
            last_write = Instant::now();
            heartbeat_now = false;
            self.streamed.fetch_max(next, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{message, TempDir};
    use crate::store::StoreConfig;

    #[test]
    fn a_slave_starts_where_it_stands_unless_it_holds_what_this_master_lost() {
        let dir = TempDir::new("ha_start");
        let mut config = StoreConfig::new(dir.path());
        config.commit_log_file_size = 4096;
        config.index_hash_slots = 16;
        config.index_max_entries = 64;
        let store = MessageStore::open(config).unwrap();
        for _ in 0..30 {
            store.put_blocking(&[message(&[7; 300])], false).unwrap();
        }
        let end = store.commit_log_range().1;
        assert!(end > 2 * 4096);
        let ha = HaService::new(store.clone(), HaConfig::default());
        // An empty slave starts at the master's last segment.
        assert_eq!(ha.start_for(0), (end - end % 4096, false));
        // A slave behind, or level, starts where it stands.
        assert_eq!(ha.start_for(100), (100, false));
        assert_eq!(ha.start_for(end), (end, false));
        // A slave ahead of what this master opened with is told to cut back.
        assert_eq!(ha.start_for(end + 500), (end, true));
        // Once this master has written and sent past that point, it is not.
        store.put_blocking(&[message(&[8; 300])], false).unwrap();
        let later = store.commit_log_range().1;
        ha.streamed.fetch_max(later, Ordering::AcqRel);
        assert_eq!(ha.start_for(later), (later, false));
        assert_eq!(ha.start_for(later + 1), (end, true));
    }
}
