//! Where the runs are: a `--store` address, checked before anything is opened, so that a
//! wrong path says so instead of creating an empty store.

use std::path::{Path, PathBuf};

use flow_core::store::SqliteStore;
use rusqlite::OpenFlags;

use crate::error::CliError;

/// A store address, as `--store` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
}

impl Address {
    /// Reads `--store`.
    ///
    /// # Errors
    ///
    /// [`CliError::BadStore`] for anything but `sqlite:PATH` or a PostgreSQL URL.
    pub fn parse(given: &str) -> Result<Address, CliError> {
        if let Some(path) = given.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.is_empty() {
                return Ok(Address::Sqlite(PathBuf::from(path)));
            }
        }
        if given.starts_with("postgres://") || given.starts_with("postgresql://") {
            return Ok(Address::Postgres(given.to_owned()));
        }
        let hint = if Path::new(given).is_file() {
            format!(" (here: sqlite:{given})")
        } else {
            String::new()
        };
        Err(CliError::BadStore { given: given.to_owned(), hint })
    }
}

/// Opens the SQLite store at `path`, once it is known to be one: the file exists, SQLite reads
/// it, and it has flow's runs table. (Opening a store creates a missing file, and upgrades an
/// older one; neither is wanted of a typo.)
///
/// # Errors
///
/// [`CliError::NoFile`], [`CliError::NotAStore`], or the store's own error.
pub fn sqlite(path: &Path) -> Result<SqliteStore, CliError> {
    if !path.exists() {
        return Err(CliError::NoFile { path: path.to_owned() });
    }
    let not_a_store = |reason: &str, source| CliError::NotAStore {
        path: path.to_owned(),
        reason: reason.to_owned(),
        source,
    };
    if path.is_dir() {
        return Err(not_a_store("it is a directory", None));
    }
    let connection = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|error| not_a_store("SQLite cannot open it", Some(error)))?;
    let tables: rusqlite::Result<i64> = connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'flow_runs'",
        [],
        |row| row.get(0),
    );
    match tables {
        Ok(0) => return Err(not_a_store("it is a SQLite database without flow's tables", None)),
        Ok(_) => {}
        Err(error) => return Err(not_a_store("it is not a SQLite database", Some(error))),
    }
    drop(connection);
    SqliteStore::open(path).map_err(CliError::store(format!("open {}", path.display())))
}

/// Opens the PostgreSQL store at `url`, in `schema` (default `public`).
///
/// # Errors
///
/// The store's error if the server cannot be reached or refuses.
#[cfg(feature = "postgres")]
pub async fn postgres(
    url: &str,
    schema: Option<&str>,
) -> Result<flow_core::store::PostgresStore, CliError> {
    let mut builder = flow_core::store::PostgresStore::builder(url);
    if let Some(schema) = schema {
        builder = builder.schema(schema);
    }
    builder.connect().await.map_err(CliError::store("open the PostgreSQL store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_sqlite_or_postgres_and_nothing_else() {
        assert_eq!(Address::parse("sqlite:runs.db").unwrap(), Address::Sqlite("runs.db".into()));
        assert_eq!(
            Address::parse("sqlite:///tmp/r.db").unwrap(),
            Address::Sqlite("/tmp/r.db".into())
        );
        let url = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(Address::parse(url).unwrap(), Address::Postgres(url.into()));
        for wrong in ["runs.db", "sqlite:", "mysql://x", ""] {
            let error = Address::parse(wrong).unwrap_err().to_string();
            assert!(
                error.contains("not a store address") && error.contains("sqlite:PATH"),
                "{error}"
            );
        }
    }
}
