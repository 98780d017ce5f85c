//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A SQLite path for test `name` under cargo's directory for test files, with whatever an
/// earlier run left there (the database and its WAL files) removed.
pub fn db(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
