//! Master/slave replication: RocketMQ 4.x's classic HA protocol.
//!
//! - [`wire`]: the two messages, a slave's 8-byte offset report and a
//!   master's frame of CommitLog bytes behind a 12-byte header.
//! - [`master`]: [`HaService`], the master's side: the HA port, one link per
//!   slave streaming the CommitLog from where the slave stands, and what a
//!   SYNC_MASTER's send waits for.
//! - [`transfer`]: group commit of those waits; one report releases every
//!   send it covers.
//! - [`slave`]: [`HaClient`], the slave's side: connects to its master,
//!   appends the bytes to its own CommitLog at the master's offsets (the
//!   store builds its own ConsumeQueues and index from them), reports.
//!
//! Replication works on the store alone; what a slave copies besides the
//! CommitLog (topics, offsets, groups) is the broker's
//! (`broker/task/slave_sync.rs`), as RocketMQ splits `store/ha` and
//! `broker/slave`.

pub mod master;
pub mod slave;
mod transfer;
pub mod wire;

use std::time::Duration;

pub use master::{HaService, ReplicaStatus};
pub use slave::HaClient;

/// The replication settings, named after RocketMQ's MessageStoreConfig keys.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// `haSendHeartbeatInterval` (5 s): a link silent this long gets a
    /// heartbeat (an empty frame from the master, a report from the slave).
    pub send_heartbeat_interval: Duration,
    /// `haHousekeepingInterval` (20 s): a link that has received nothing for
    /// this long is closed (and a slave connects again).
    pub housekeeping_interval: Duration,
    /// `haTransferBatchSize` (32 KiB): most CommitLog bytes in one frame.
    pub transfer_batch_size: usize,
    /// `haSlaveFallbehindMax` (256 MiB): a SYNC_MASTER answers
    /// SLAVE_NOT_AVAILABLE at once when its slave is further behind.
    pub slave_fallbehind_max: i64,
    /// `slaveTimeout` (3 s, as RocketMQ 4.9.3 on; 4.9.0 to 4.9.2 waited
    /// `syncFlushTimeout`): how long a SYNC_MASTER's send waits for its slave
    /// before it answers FLUSH_SLAVE_TIMEOUT.
    pub slave_timeout: Duration,
    /// `haMasterAddress`: a slave's master HA address, fixed; otherwise the
    /// NameServers tell it (and keep telling it, should the master move).
    pub master_address: Option<String>,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            send_heartbeat_interval: Duration::from_secs(5),
            housekeeping_interval: Duration::from_secs(20),
            transfer_batch_size: 32 * 1024,
            slave_fallbehind_max: 256 * 1024 * 1024,
            slave_timeout: Duration::from_secs(3),
            master_address: None,
        }
    }
}

impl HaConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.transfer_batch_size == 0 || self.transfer_batch_size > slave::MAX_FRAME_DATA {
            return Err(format!(
                "haTransferBatchSize must be 1..={} bytes",
                slave::MAX_FRAME_DATA
            ));
        }
        if self.send_heartbeat_interval.is_zero()
            || self.housekeeping_interval <= self.send_heartbeat_interval
        {
            return Err(
                "haHousekeepingInterval must be longer than haSendHeartbeatInterval (> 0)".into(),
            );
        }
        Ok(())
    }
}

/// Reads what `stream` has into `buf`, waiting at most `limit`: `None` if
/// nothing came in time, else what `read` gave (0 is the peer hanging up).
pub(crate) async fn read_within(
    stream: &mut async_net::TcpStream,
    buf: &mut [u8],
    limit: Duration,
) -> Option<std::io::Result<usize>> {
    use futures_lite::io::AsyncReadExt;
    futures_lite::future::or(async { Some(stream.read(buf).await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}
