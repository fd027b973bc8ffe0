//! The broker's JSON files under `<store root>/config/` (`topics.json`,
//! `consumerOffset.json`, `subscriptionGroup.json`, `delayOffset.json`), written
//! as RocketMQ writes them: the new content to a temp file, fsync, rename over
//! the old, after keeping the previous version as `<name>.bak`. A crash leaves
//! the old or the new file, never a half-written one; a damaged file falls back
//! to its `.bak`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::checkpoint::write_atomically;
use crate::store::StoreError;

/// One persisted JSON file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    /// Saves one at a time, each with a snapshot taken under the lock, so an
    /// older snapshot can never overwrite a newer one.
    save_lock: Arc<Mutex<()>>,
}

impl ConfigFile {
    /// The file `name` under `<root>/config/`.
    pub fn new(root: &Path, name: &str) -> Self {
        ConfigFile {
            path: root.join("config").join(name),
            save_lock: Arc::new(Mutex::new(())),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bak(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".bak");
        self.path.with_file_name(name)
    }

    /// Reads and decodes the file, falling back to its `.bak` when the file is
    /// missing or does not decode. `Ok(None)` when neither exists.
    pub fn load<T>(
        &self,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        let mut first_error = None;
        for path in [self.path.clone(), self.bak()] {
            match std::fs::read(&path) {
                Ok(bytes) => match decode(&bytes) {
                    Ok(value) => {
                        if let Some(e) = &first_error {
                            log::warn!("{e}; loaded {} instead", path.display());
                        }
                        return Ok(Some(value));
                    }
                    Err(e) => {
                        let msg = format!("{} is damaged: {e}", path.display());
                        log::error!("{msg}");
                        first_error.get_or_insert(msg);
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(format!("cannot read {}: {e}", path.display()));
                }
            }
        }
        match first_error {
            // Refusing to start is safer than silently forgetting offsets.
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Takes a snapshot with `snapshot` and writes it atomically, one save at a
    /// time, keeping the previous content as `.bak`.
    pub fn save_with(&self, snapshot: impl FnOnce() -> Vec<u8>) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.write(&snapshot())
    }

    /// Writes `bytes` atomically, keeping the previous content as `.bak`.
    pub fn save(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.write(bytes)
    }

    fn write(&self, bytes: &[u8]) -> Result<(), StoreError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        }
        if self.path.exists() {
            std::fs::copy(&self.path, self.bak())
                .map_err(|e| StoreError::io("back up", &self.path, e))?;
        }
        write_atomically(&self.path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    #[test]
    fn falls_back_to_the_backup() {
        let dir = TempDir::new("persist");
        let file = ConfigFile::new(dir.path(), "x.json");
        let decode = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    if s.starts_with('{') {
                        Ok(s)
                    } else {
                        Err("not an object".to_string())
                    }
                })
        };
        assert_eq!(file.load(decode).unwrap(), None);
        file.save(b"{1}").unwrap();
        file.save(b"{2}").unwrap();
        assert_eq!(file.load(decode).unwrap().as_deref(), Some("{2}"));
        std::fs::write(file.path(), b"garbage").unwrap();
        assert_eq!(file.load(decode).unwrap().as_deref(), Some("{1}"));
        std::fs::write(file.bak(), b"garbage").unwrap();
        assert!(file.load(decode).is_err());
    }
}
