//! Component SQL is confined to the component's own tables and its call:
//! hostile statements, run by a deployed component (the faulty test
//! component's `exec:STATEMENT`), are refused or bounded, and afterwards
//! the next call and the next deploy still work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::{Backend, TestApp, variant};

async fn exec(app: &TestApp, statement: &str) -> Value {
    let query = "query($id: ID!) { product(id: $id) { name } }";
    app.post(json!({ "query": query, "variables": { "id": format!("exec:{statement}") } })).await.1
}

/// What a statement came to: the component's report, or the call's error
/// code if the call itself failed.
fn outcome(body: &Value) -> String {
    match body["data"]["product"]["name"].as_str() {
        Some(name) => name.to_string(),
        None => format!("call failed: {}", body["errors"][0]["extensions"]["code"]),
    }
}

async fn refused_or_bounded(backend: Backend, attacks: &[(&str, &[&str])]) {
    let app = Arc::new(TestApp::spawn(backend).await);
    app.deploy(polyscale_test_components::FAULTY_PRODUCT.to_vec()).await;
    for (statement, expected) in attacks {
        let started = Instant::now();
        let said = outcome(&exec(&app, statement).await);
        assert!(expected.iter().any(|e| said.contains(e)), "{statement}: {said}");
        // Bounded by the call's 2 s deadline (plus slack for a loaded
        // machine), not by the statement.
        assert!(started.elapsed() < Duration::from_secs(10), "{statement} took {:?}", started.elapsed());
        // The next call works.
        let ok = exec(&app, "SELECT 1").await;
        assert_eq!(outcome(&ok), "ok 1 rows", "after {statement}: {ok}");
    }

    // Statements that never end, more of them at once than the pool has
    // connections: each stops at its call's deadline and gives its
    // connection back, so ordinary calls are served afterwards.
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let runs: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { outcome(&exec(&app, endless).await) })
        })
        .collect();
    for run in runs {
        let said = run.await.unwrap();
        assert!(said.contains("deadline") || said.contains("TIMEOUT") || said.contains("cancel"), "{said}");
    }
    let started = Instant::now();
    assert_eq!(outcome(&exec(&app, "SELECT 1").await), "ok 1 rows");
    assert!(started.elapsed() < Duration::from_secs(2), "the pool was still busy: {:?}", started.elapsed());

    // And the next deploy (which runs migrations) works.
    let next = app.deploy(variant(polyscale_test_components::FAULTY_PRODUCT, "after-attacks")).await;
    assert!(next.active);
    assert_eq!(outcome(&exec(&app, "SELECT 1").await), "ok 1 rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_component_sql_is_refused_or_bounded_on_sqlite() {
    refused_or_bounded(
        Backend::Sqlite,
        &[
            ("SELECT * FROM _polyscale_search_outbox", &["access denied"]),
            ("BEGIN IMMEDIATE", &["access denied"]),
            ("PRAGMA writable_schema = 1", &["access denied"]),
            // Past the lexical check; the engine's authorizer refuses.
            ("SELECT * FROM pragma_table_info('faulty_marks')", &["access denied", "not authorized"]),
            ("SELECT length(randomblob(500000000))", &["too large", "too big"]),
            ("ATTACH DATABASE 'elsewhere.db' AS elsewhere", &["access denied"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_component_sql_is_refused_or_bounded_on_postgres() {
    refused_or_bounded(
        Backend::Postgres,
        &[
            ("SELECT * FROM U&\"\\005Fpolyscale_migrations\"", &["access denied"]),
            ("DO $$ BEGIN PERFORM pg_sleep(30); END $$", &["access denied"]),
            ("SELECT pg_advisory_lock(42)", &["access denied"]),
            ("SET search_path TO pg_catalog", &["access denied"]),
            ("BEGIN", &["access denied"]),
            ("SELECT query_to_xml(E'select * from \\\\x5fpolyscale_migrations', true, true, '')", &["access denied"]),
            ("SELECT pg_sleep(30)", &["deadline", "cancel", "TIMEOUT"]),
        ],
    )
    .await;
}
