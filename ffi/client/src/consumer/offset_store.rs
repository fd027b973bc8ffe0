//! Consumer offsets (RocketMQ's OffsetStore): where a consumer group resumes.
//!
//! - Remote (clustering): offsets live on the broker that
//!   holds the queue. Updates stay in memory and are committed with
//!   UPDATE_CONSUMER_OFFSET (one-way every persist interval, awaited at
//!   shutdown); QUERY_CONSUMER_OFFSET reads them back, QUERY_NOT_FOUND meaning
//!   "no offset yet".
//! - Local (broadcasting): every consumer keeps its own
//!   offsets in `<dir>/<client id>/<group>/offsets.json`, Java's
//!   `OffsetSerializeWrapper` layout (`{"offsetTable":{<MessageQueue>:<offset>}}`),
//!   written tmp + fsync + rename so a crash leaves the old or the new file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use mq_protocol::body::{MessageModel, MessageQueue, ResetOffsetBody};
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{
    CommandHeader, OffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};

use crate::connection::client_request;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;

/// The directory of broadcasting offsets when none is configured
/// (`rocketmq.client.localOffsetStoreDir`): `$HOME/.rocketmq_offsets`.
pub fn default_offset_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
        .join(".rocketmq_offsets")
}

/// Where a consumer group's offsets are kept.
pub(crate) enum OffsetStore {
    /// On the brokers (clustering).
    Remote(RemoteOffsetStore),
    /// In a local file (broadcasting).
    Local(LocalOffsetStore),
}

/// Offsets committed to the brokers.
pub(crate) struct RemoteOffsetStore {
    instance: Arc<ClientInstance>,
    group: String,
    /// What the consumer has processed, not yet necessarily on the broker.
    table: Mutex<HashMap<MessageQueue, i64>>,
}

/// Offsets in a file of this client.
pub(crate) struct LocalOffsetStore {
    path: PathBuf,
    table: Mutex<HashMap<MessageQueue, i64>>,
    /// Serializes file writes (the periodic task and shutdown may overlap).
    write_lock: async_lock::Mutex<()>,
}

impl OffsetStore {
    /// The store a consumer of `group` uses: the brokers' in clustering mode,
    /// a local file (under `dir`, else [`default_offset_dir`]) in broadcasting.
    pub(crate) fn for_group(
        instance: &Arc<ClientInstance>,
        group: &str,
        model: MessageModel,
        dir: Option<&PathBuf>,
    ) -> Result<Self> {
        Ok(match model {
            MessageModel::Clustering => OffsetStore::remote(instance.clone(), group),
            MessageModel::Broadcasting => {
                let dir = dir.cloned().unwrap_or_else(default_offset_dir);
                OffsetStore::local(&dir, instance.client_id(), group)?
            }
        })
    }

    /// A broker-backed store for `group`.
    fn remote(instance: Arc<ClientInstance>, group: &str) -> Self {
        OffsetStore::Remote(RemoteOffsetStore {
            instance,
            group: group.to_owned(),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// A file-backed store: `<dir>/<client_id>/<group>/offsets.json`, loaded now.
    fn local(dir: &Path, client_id: &str, group: &str) -> Result<Self> {
        let path = dir.join(client_id).join(group).join("offsets.json");
        let table = load_offsets(&path)?;
        Ok(OffsetStore::Local(LocalOffsetStore {
            path,
            table: Mutex::new(table),
            write_lock: async_lock::Mutex::new(()),
        }))
    }

    fn table(&self) -> &Mutex<HashMap<MessageQueue, i64>> {
        match self {
            OffsetStore::Remote(r) => &r.table,
            OffsetStore::Local(l) => &l.table,
        }
    }

    /// Records `offset` for `mq` in memory; with `increase_only`, an older
    /// offset does not replace a newer one.
    pub(crate) fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut table = self.table().lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.entry(mq.clone()).or_insert(offset);
        if !increase_only || offset > *entry {
            *entry = offset;
        }
    }

    /// The offset in memory.
    pub(crate) fn read_memory(&self, mq: &MessageQueue) -> Option<i64> {
        self.table()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(mq)
            .copied()
    }

    /// The stored offset: the broker's (remote) or the file's (local); `None`
    /// when there is none. A remote answer also refreshes memory.
    pub(crate) async fn read_store(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        match self {
            OffsetStore::Remote(r) => {
                let found = r.query(mq).await?;
                if let Some(offset) = found {
                    self.update(mq, offset, false);
                }
                Ok(found)
            }
            OffsetStore::Local(l) => {
                let path = l.path.clone();
                let table = blocking::unblock(move || load_offsets(&path)).await?;
                Ok(table.get(mq).copied())
            }
        }
    }

    /// Forgets `mq` (after it was persisted and the queue left this consumer).
    pub(crate) fn remove(&self, mq: &MessageQueue) {
        self.table()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(mq);
    }

    /// Commits the offsets of `mqs` (all in memory when `None`): one-way
    /// updates, or awaited ones when `wait`; the local store rewrites its file.
    pub(crate) async fn persist_all(&self, mqs: Option<&[MessageQueue]>, wait: bool) -> Result<()> {
        let snapshot: Vec<(MessageQueue, i64)> = {
            let table = self.table().lock().unwrap_or_else(PoisonError::into_inner);
            match mqs {
                None => table.iter().map(|(q, o)| (q.clone(), *o)).collect(),
                Some(mqs) => mqs
                    .iter()
                    .filter_map(|q| table.get(q).map(|o| (q.clone(), *o)))
                    .collect(),
            }
        };
        match self {
            OffsetStore::Remote(r) => {
                let mut first_error = None;
                for (mq, offset) in snapshot {
                    if let Err(e) = r.commit(&mq, offset, wait).await {
                        log::debug!("committing offset {offset} of {mq:?}: {e}");
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            OffsetStore::Local(l) => l.write().await,
        }
    }

    /// Commits one queue's offset (awaited).
    pub(crate) async fn persist(&self, mq: &MessageQueue) -> Result<()> {
        self.persist_all(Some(std::slice::from_ref(mq)), true).await
    }
}

impl RemoteOffsetStore {
    async fn query(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let addr = self.instance.queue_master_addr(mq).await?;
        let mut cmd = client_request(request::QUERY_CONSUMER_OFFSET);
        QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
        }
        .encode(&mut cmd.ext_fields);
        cmd.put("bname", &mq.broker_name);
        let resp = self
            .instance
            .invoke(&addr, cmd, self.instance.config().request_timeout)
            .await?;
        match resp.code {
            response::SUCCESS => {
                let h = OffsetResponseHeader::decode(&resp.ext_fields)
                    .map_err(|e| ClientError::decode("consumer offset", e))?;
                Ok((h.offset >= 0).then_some(h.offset))
            }
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(ClientError::refused(resp)),
        }
    }

    async fn commit(&self, mq: &MessageQueue, offset: i64, wait: bool) -> Result<()> {
        let addr = self.instance.queue_master_addr(mq).await?;
        let mut cmd = client_request(request::UPDATE_CONSUMER_OFFSET);
        UpdateConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
        }
        .encode(&mut cmd.ext_fields);
        cmd.put("bname", &mq.broker_name);
        if !wait {
            return self.instance.invoke_oneway(&addr, cmd).await;
        }
        let resp = self
            .instance
            .invoke(&addr, cmd, self.instance.config().request_timeout)
            .await?;
        match resp.code {
            response::SUCCESS => Ok(()),
            _ => Err(ClientError::refused(resp)),
        }
    }
}

impl LocalOffsetStore {
    async fn write(&self) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let body = ResetOffsetBody {
            offset_table: self
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(q, o)| (q.clone(), *o))
                .collect::<BTreeMap<_, _>>(),
        }
        .encode();
        let path = self.path.clone();
        blocking::unblock(move || write_atomically(&path, &body))
            .await
            .map_err(|source| ClientError::Io {
                what: format!("writing offsets file {}", self.path.display()),
                source,
            })
    }
}

/// Reads an offsets file; a missing file is an empty table.
fn load_offsets(path: &Path) -> Result<HashMap<MessageQueue, i64>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(ClientError::Io {
                what: format!("reading offsets file {}", path.display()),
                source,
            })
        }
    };
    let body =
        ResetOffsetBody::decode(&bytes).map_err(|e| ClientError::decode("offsets file", e))?;
    Ok(body.offset_table.into_iter().collect())
}

/// Writes `bytes` to `path` through a temporary file: write, fsync, rename,
/// then fsync the directory so the rename itself is durable.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Best effort: some filesystems refuse fsync on a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_offsets_survive_a_reload() {
        let dir = std::env::temp_dir().join(format!("mq-offsets-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = OffsetStore::local(&dir, "127.0.0.1@x", "G").unwrap();
        let q0 = MessageQueue::new("T", "b", 0);
        let q1 = MessageQueue::new("T", "b", 1);
        store.update(&q0, 5, false);
        store.update(&q0, 3, true);
        store.update(&q1, 7, false);
        assert_eq!(store.read_memory(&q0), Some(5));
        async_io::block_on(store.persist_all(None, true)).unwrap();
        let again = OffsetStore::local(&dir, "127.0.0.1@x", "G").unwrap();
        assert_eq!(again.read_memory(&q0), Some(5));
        assert_eq!(async_io::block_on(again.read_store(&q1)).unwrap(), Some(7));
        assert!(dir.join("127.0.0.1@x/G/offsets.json").exists());
        let text = std::fs::read_to_string(dir.join("127.0.0.1@x/G/offsets.json")).unwrap();
        assert!(text.starts_with("{\"offsetTable\":{{"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
