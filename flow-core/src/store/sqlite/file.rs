//! The database file a store opened, and what it does once another file is at its path.
//!
//! SQLite names a database's journal files after its path (`runs.db-wal`, `runs.db-shm`). If
//! the file is deleted, writes go to a file nobody can open again; if another file is put at
//! the path, whoever opens it next replays this store's journal over it. So the store checks,
//! before each write and each read, that the path still holds the file it opened. The first
//! time it does not, the store removes its own journal files (only if they are still its
//! own), turns off its connections' checkpoint on close (which would remove whatever journal
//! is at the path by then), and fails every call from then on with
//! [`StoreError::FileChanged`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::store::StoreError;

/// A file's identity: its device and inode on Unix, where files can be replaced under an
/// open handle; elsewhere only whether it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity(u64, u64);

fn identity(path: &Path) -> Option<Identity> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(Identity(metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Some(Identity(0, 0))
    }
}

fn journal(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The file a store opened, with its journal files.
#[derive(Debug)]
pub(super) struct File {
    path: PathBuf,
    database: Identity,
    /// The write-ahead log and its index, as they were when the store opened.
    journals: Vec<(PathBuf, Option<Identity>)>,
    /// Set once the path no longer holds the file: whether another file is there.
    changed: Mutex<Option<bool>>,
}

impl File {
    /// The file at `path` now, which the store has just opened (and switched to WAL).
    pub fn opened(path: &Path) -> std::io::Result<File> {
        let database = identity(path).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the file vanished as it opened")
        })?;
        let journals = ["-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let path = journal(path, suffix);
                let id = identity(&path);
                (path, id)
            })
            .collect();
        Ok(File { path: path.to_owned(), database, journals, changed: Mutex::new(None) })
    }

    /// `Ok` while the path holds the file opened. The first time it does not, removes the
    /// store's own journal files and remembers; then, and ever after,
    /// [`StoreError::FileChanged`], with `connection` set not to checkpoint when it closes.
    pub fn check(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut changed = self.changed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if changed.is_none() {
            match identity(&self.path) {
                Some(now) if now == self.database => return Ok(()),
                now => {
                    *changed = Some(now.is_some());
                    for (path, was) in &self.journals {
                        if was.is_some() && identity(path) == *was {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                    tracing::error!(
                        path = %self.path.display(),
                        "the store's file was {} while open; nothing more is written to it",
                        if now.is_some() { "replaced" } else { "deleted" }
                    );
                }
            }
        }
        let replaced = changed.unwrap_or(false);
        drop(changed);
        self.disown(connection);
        Err(StoreError::FileChanged { path: self.path.clone(), replaced })
    }

    /// Sets `connection` not to checkpoint when it closes if the file has changed: the
    /// checkpoint would remove the journal at the path, which is no longer this store's.
    pub fn disown(&self, connection: &Connection) {
        let changed = self.changed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if changed.is_some() {
            let _ = connection.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        }
    }
}
