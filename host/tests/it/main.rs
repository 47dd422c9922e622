//! Host tests without Wasm: capabilities and migrations against real
//! databases (SQLite files and PostgreSQL).

mod credentials;
mod elasticsearch_requests;
mod migrations;
mod search;
mod sql;
mod worlds;

use polyscale_host::database::{ConnectOptions, Database};
use polyscale_testkit::pg::{TestDatabase, fresh_database};

/// A database of each kind for one test; keeps its backing file or
/// PostgreSQL database alive while held.
pub enum Guard {
    File(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] TestDatabase),
}

pub async fn sqlite() -> (Database, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    (Database::connect(&url, &ConnectOptions::default()).await.unwrap(), Guard::File(dir))
}

pub async fn postgres() -> (Database, Guard) {
    let db = fresh_database().await;
    (Database::connect(&db.url, &ConnectOptions::default()).await.unwrap(), Guard::Pg(db))
}

/// Runs an async test body once per backend.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (db, _guard) = $crate::sqlite().await;
                super::$body(db).await;
            }
            #[tokio::test]
            async fn postgres() {
                let (db, _guard) = $crate::postgres().await;
                super::$body(db).await;
            }
        }
    };
}
