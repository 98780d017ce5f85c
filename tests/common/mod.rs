//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A SQLite path for test `name` under cargo's directory for test files, with whatever an
/// earlier run left there (the database and its WAL files) removed.
#[allow(dead_code)] // Not every test file uses SQLite.
pub fn db(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// The PostgreSQL database the tests use: `DATABASE_URL`, which `.ci/run` sets. A test that
/// needs it fails, saying so, when it is missing: it is never passed without a database.
#[cfg(feature = "postgres")]
#[allow(dead_code)] // Not every test file uses PostgreSQL.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL tests need DATABASE_URL, e.g. \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test; \
             or leave them out by testing without `--features postgres`"
        )
    })
}

/// A PostgreSQL store of its own for test `name`: a fresh schema, whatever an earlier run
/// left in it dropped.
#[cfg(feature = "postgres")]
#[allow(dead_code)]
pub async fn postgres(name: &str) -> flow::store::PostgresStore {
    let schema = schema_for(name);
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to DATABASE_URL {url}: {error}"));
    let driver = tokio::spawn(connection);
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
    drop(client);
    let _ = driver.await;
    flow::store::PostgresStore::builder(url).schema(schema).connect().await.unwrap()
}

/// A schema name for test `name`, within PostgreSQL's 63 bytes and unique per name.
#[cfg(feature = "postgres")]
#[allow(dead_code)]
pub fn schema_for(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let short: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(40)
        .collect();
    format!("flow_{short}_{:08x}", hasher.finish() as u32)
}
