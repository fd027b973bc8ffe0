//! The slave's side of replication (RocketMQ's HAClient): one connection to
//! the master's HA port, made again whenever it breaks.
//!
//! On connecting, the slave reports where its CommitLog ends (RocketMQ 4.9.7
//! waits up to `haSendHeartbeatInterval` before its first report; the master
//! sends nothing until it has one, so mq reports at once). Then it appends
//! every frame's bytes at the frame's offset, which must be where its log
//! ends, and after each burst of frames reports its new end; under
//! SYNC_FLUSH only once a flush covers it, so that what the master
//! acknowledges is on the slave's disk as well as in its memory. A report
//! also goes out every `haSendHeartbeatInterval`, and a master silent for
//! `haHousekeepingInterval` (it sends an empty frame every
//! `haSendHeartbeatInterval` when idle) is given up on.
//!
//! A frame at an offset before the log's end comes from a master that has
//! less than this slave (see [`super::master`]): the slave cuts its log back
//! to that offset, logging every message it drops, and goes on from there.
//! A frame past the end is an error: the link is made again, from the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::io::AsyncWriteExt;

use super::wire::{self, HEADER_LEN};
use super::HaConfig;
use crate::shutdown::Shutdown;
use crate::store::{Doorbell, MessageStore};

/// Most CommitLog bytes a frame may carry (RocketMQ's slave reads into a
/// 4 MiB buffer; a master sends `haTransferBatchSize`, 32 KiB, at most).
pub const MAX_FRAME_DATA: usize = 4 * 1024 * 1024;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause between failed connection attempts (RocketMQ: 5 s; connecting is
/// cheap, and a slave that catches up sooner is worth it).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The slave's replication client.
pub struct HaClient {
    store: Arc<MessageStore>,
    config: HaConfig,
    /// The master's HA address: `haMasterAddress`, or what the NameServers
    /// said last.
    master: Mutex<Option<String>>,
    /// Rung when `master` changes.
    master_changed: Doorbell,
    /// Whether a link to the master is up now (runtime info).
    connected: AtomicBool,
}

impl HaClient {
    /// A client for `store`, not yet running.
    pub fn new(store: Arc<MessageStore>, config: HaConfig) -> Arc<Self> {
        let master = config.master_address.clone();
        Arc::new(HaClient {
            store,
            config,
            master: Mutex::new(master),
            master_changed: Doorbell::new(),
            connected: AtomicBool::new(false),
        })
    }

    /// Sets the master's HA address the NameServers gave (ignored when
    /// `haMasterAddress` is configured, as RocketMQ does).
    pub fn set_master(&self, addr: &str) {
        if self.config.master_address.is_some() {
            return;
        }
        let mut master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        if master.as_deref() != Some(addr) {
            log::info!(
                "HA: master address {} -> {addr}",
                master.as_deref().unwrap_or("(none)")
            );
            *master = Some(addr.to_owned());
            drop(master);
            self.master_changed.ring();
        }
    }

    /// The master's HA address, if known.
    pub fn master(&self) -> Option<String> {
        self.master
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a link to the master is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Connects, replicates, and connects again, until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut last_failure = String::new();
        loop {
            let Some(addr) = self.master() else {
                let changed = self
                    .master_changed
                    .wait_until(|| self.master().is_some(), RETRY_PAUSE);
                if shutdown.wait_or(changed).await {
                    return;
                }
                continue;
            };
            let session =
                futures_lite::future::or(async { Some(self.replicate(&addr).await) }, async {
                    shutdown.wait().await;
                    None
                });
            let outcome = session.await;
            if self.connected.swap(false, Ordering::AcqRel) {
                // It worked for a while: the next failure is news again.
                last_failure.clear();
            }
            let failure = match outcome {
                None => return,
                Some(Ok(())) => "closed by the master".to_owned(),
                Some(Err(e)) => e,
            };
            // One line per kind of failure, not one a second.
            if failure != last_failure {
                log::warn!("HA: link to master {addr}: {failure}; retrying every {RETRY_PAUSE:?}");
                last_failure = failure;
            }
            if shutdown.sleep(RETRY_PAUSE).await {
                return;
            }
        }
    }

    /// One connection, until it breaks: `Ok` when the master closed it.
    async fn replicate(&self, addr: &str) -> Result<(), String> {
        let connect = futures_lite::future::or(
            async { TcpStream::connect(addr).await.map_err(|e| e.to_string()) },
            async {
                async_io::Timer::after(CONNECT_TIMEOUT).await;
                Err(format!("connect timed out after {CONNECT_TIMEOUT:?}"))
            },
        );
        let mut stream = connect.await?;
        let _ = stream.set_nodelay(true);
        let mut reported = self.store.commit_log_range().1;
        stream
            .write_all(&wire::encode_report(reported))
            .await
            .map_err(|e| format!("report: {e}"))?;
        self.connected.store(true, Ordering::Release);
        log::info!("HA: connected to master {addr}, reporting offset {reported}");
        let mut last_report = Instant::now();
        let mut last_read = Instant::now();
        let heartbeat = self.config.send_heartbeat_interval;
        let silence = self.config.housekeeping_interval;
        let mut buf = vec![0u8; 256 * 1024];
        let mut filled = 0;
        loop {
            let wait = heartbeat
                .saturating_sub(last_report.elapsed())
                .min(silence.saturating_sub(last_read.elapsed()));
            if filled == buf.len() {
                // A frame larger than the buffer: grow it, within the limit.
                let want = (buf.len() * 2).min(HEADER_LEN + MAX_FRAME_DATA);
                if want == buf.len() {
                    return Err("frame larger than the limit".into());
                }
                buf.resize(want, 0);
            }
            let read = super::read_within(&mut stream, &mut buf[filled..], wait).await;
            match read {
                Some(Ok(0)) => return Ok(()),
                Some(Ok(n)) => {
                    filled += n;
                    last_read = Instant::now();
                    let used = self.apply_frames(&buf[..filled]).await?;
                    buf.copy_within(used..filled, 0);
                    filled -= used;
                }
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => {
                    if last_read.elapsed() >= silence {
                        return Err(format!("nothing from the master for {silence:?}"));
                    }
                }
            }
            let end = self.store.commit_log_range().1;
            let due = last_report.elapsed() >= heartbeat;
            if end != reported || due {
                if end > reported {
                    // SYNC_FLUSH: report only what is on disk.
                    self.store
                        .flush_replica(end)
                        .await
                        .map_err(|e| format!("flush: {e}"))?;
                }
                stream
                    .write_all(&wire::encode_report(end))
                    .await
                    .map_err(|e| format!("report: {e}"))?;
                reported = end;
                last_report = Instant::now();
            }
        }
    }

    /// Applies every whole frame at the start of `buf`; returns the bytes used.
    async fn apply_frames(&self, buf: &[u8]) -> Result<usize, String> {
        let mut used = 0;
        while let Some(frame) =
            wire::decode_frame(&buf[used..], MAX_FRAME_DATA).map_err(|e| e.to_string())?
        {
            let data = &buf[used..][frame.data.clone()];
            let end = self.store.commit_log_range().1;
            if frame.offset < end && end > 0 {
                self.cut_back(frame.offset).await?;
            } else if frame.offset > end && end > 0 {
                return Err(format!(
                    "the master sent offset {}, this log ends at {end}",
                    frame.offset
                ));
            }
            if !data.is_empty() {
                self.store
                    .append_replica(frame.offset, data)
                    .map_err(|e| e.to_string())?;
            }
            used += frame.len();
        }
        Ok(used)
    }

    /// Cuts the log back to `end`, the master's end (blocking work, off the
    /// executor).
    async fn cut_back(&self, end: i64) -> Result<(), String> {
        let store = self.store.clone();
        let dropped = blocking::unblock(move || store.truncate_replica(end))
            .await
            .map_err(|e| format!("cutting the log back to {end}: {e}"))?;
        log::warn!(
            "HA: cut the commit log back from {} to the master's {}; {} message(s) dropped",
            dropped.to,
            dropped.from,
            dropped.messages
        );
        Ok(())
    }
}
