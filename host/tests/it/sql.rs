//! The `sql` capability's backends.

use std::time::Duration;

use polyscale_host::capabilities::sql::guard;
use polyscale_host::database::{ConnectOptions, ConstraintKind, Database, Dialect, SqlError, SqlLimits, Value};
use polyscale_testkit::pg::PgCluster;

use crate::on_both;

const LIMITS: SqlLimits =
    SqlLimits { max_statement_bytes: 65536, max_params: 1000, max_rows: 100, max_result_bytes: 1 << 20 };

async fn schema(db: &Database) {
    let blob = if db.dialect() == Dialect::Sqlite { "BLOB" } else { "BYTEA" };
    for statement in [
        "CREATE TABLE parents (id TEXT PRIMARY KEY)".to_string(),
        format!(
            "CREATE TABLE things (
                id TEXT PRIMARY KEY,
                n BIGINT,
                x DOUBLE PRECISION,
                label TEXT NOT NULL,
                data {blob},
                flag BOOLEAN,
                parent TEXT REFERENCES parents (id),
                qty BIGINT NOT NULL DEFAULT 0 CHECK (qty >= 0),
                code TEXT UNIQUE
            )"
        ),
    ] {
        db.execute(&statement, &[]).await.unwrap();
    }
}

async fn values_round_trip(db: Database) {
    schema(&db).await;
    let inserted = db
        .execute(
            "INSERT INTO things (id, n, x, label, data, flag) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)",
            &[
                Value::Text("a".into()),
                Value::Integer(i64::MAX),
                Value::Real(1.5),
                Value::Text("ünïcødé ✓".into()),
                Value::Blob(vec![0, 1, 255]),
                Value::Boolean(true),
                // NULLs of every column type bind without a type.
                Value::Text("b".into()),
                Value::Null,
                Value::Null,
                Value::Text("".into()),
                Value::Null,
                Value::Null,
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let rows = db.query("SELECT id, n, x, label, data, flag FROM things ORDER BY id", &[], &LIMITS).await.unwrap();
    assert_eq!(rows.columns, ["id", "n", "x", "label", "data", "flag"]);
    // Booleans come back as booleans from PostgreSQL and as 0/1 from
    // SQLite, as the WIT contract says.
    let flag = if db.dialect() == Dialect::Sqlite { Value::Integer(1) } else { Value::Boolean(true) };
    assert_eq!(
        rows.rows[0],
        [
            Value::Text("a".into()),
            Value::Integer(i64::MAX),
            Value::Real(1.5),
            Value::Text("ünïcødé ✓".into()),
            Value::Blob(vec![0, 1, 255]),
            flag
        ]
    );
    assert_eq!(
        rows.rows[1],
        [Value::Text("b".into()), Value::Null, Value::Null, Value::Text("".into()), Value::Null, Value::Null]
    );

    // The same placeholder twice, and out of order.
    let rows = db
        .query(
            "SELECT id FROM things WHERE label = $2 OR id = $1 OR id = $1 ORDER BY id",
            &[Value::Text("b".into()), Value::Text("nothing".into())],
            &LIMITS,
        )
        .await
        .unwrap();
    assert_eq!(rows.rows, [[Value::Text("b".into())]]);

    // Aggregates come back as integers when cast, as the dialect asks.
    let rows = db
        .query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM(n) AS BIGINT) AS s FROM things WHERE id = 'b'",
            &[],
            &LIMITS,
        )
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], Value::Integer(1));
}
on_both!(values_round_trip_, values_round_trip);

async fn constraint_kinds(db: Database) {
    schema(&db).await;
    db.execute("INSERT INTO things (id, label, code) VALUES ('a', 'x', 'c1')", &[]).await.unwrap();
    let cases = [
        ("INSERT INTO things (id, label) VALUES ('a', 'dup')", ConstraintKind::Unique),
        ("INSERT INTO things (id, label, code) VALUES ('b', 'x', 'c1')", ConstraintKind::Unique),
        ("INSERT INTO things (id, label, parent) VALUES ('c', 'x', 'nope')", ConstraintKind::ForeignKey),
        ("INSERT INTO things (id) VALUES ('d')", ConstraintKind::NotNull),
        ("UPDATE things SET qty = qty - 1 WHERE id = 'a'", ConstraintKind::Check),
    ];
    for (statement, kind) in cases {
        match db.execute(statement, &[]).await {
            Err(SqlError::Constraint(c)) => assert_eq!(c.kind, kind, "{statement}: {}", c.message),
            other => panic!("{statement}: expected a {kind:?} violation, got {other:?}"),
        }
    }
    // Nothing of the failed statements was kept.
    let rows =
        db.query("SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(qty) AS BIGINT) FROM things", &[], &LIMITS).await.unwrap();
    assert_eq!(rows.rows[0], [Value::Integer(1), Value::Integer(0)]);
}
on_both!(constraint_kinds_, constraint_kinds);

async fn statement_errors_and_limits(db: Database) {
    schema(&db).await;
    assert!(matches!(db.query("SELEC nonsense", &[], &LIMITS).await, Err(SqlError::InvalidStatement(_))));
    assert!(matches!(db.query("SELECT nope FROM things", &[], &LIMITS).await, Err(SqlError::InvalidStatement(_))));
    for i in 0..150 {
        db.execute("INSERT INTO things (id, label) VALUES ($1, 'x')", &[Value::Text(format!("id{i:03}"))])
            .await
            .unwrap();
    }
    match db.query("SELECT id FROM things", &[], &LIMITS).await {
        Err(SqlError::TooLarge(m)) => assert!(m.contains("100 rows"), "{m}"),
        other => panic!("expected too-large, got {other:?}"),
    }
    let big = SqlLimits { max_result_bytes: 1000, ..LIMITS };
    assert!(matches!(db.query("SELECT id, label FROM things LIMIT 90", &[], &big).await, Err(SqlError::TooLarge(_))));
    assert_eq!(db.query("SELECT id FROM things LIMIT 100", &[], &LIMITS).await.unwrap().rows.len(), 100);
}
on_both!(statement_errors_and_limits_, statement_errors_and_limits);

async fn transactions(db: Database) {
    schema(&db).await;
    let count = |db: Database| async move {
        match db.query("SELECT CAST(COUNT(*) AS BIGINT) FROM things", &[], &LIMITS).await.unwrap().rows[0][0] {
            Value::Integer(n) => n,
            ref other => panic!("{other:?}"),
        }
    };
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO things (id, label) VALUES ('t1', 'x')", &[]).await.unwrap();
    let inside = tx.query("SELECT id FROM things", &[], &LIMITS).await.unwrap();
    assert_eq!(inside.rows.len(), 1);
    tx.commit().await.unwrap();
    assert_eq!(count(db.clone()).await, 1);

    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO things (id, label) VALUES ('t2', 'x')", &[]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(db.clone()).await, 1);

    // Dropped without commit: rolled back, and its locks released. The same
    // row inserted again must succeed promptly: it would hit a unique
    // violation had the first been committed, and wait on the lock (then
    // fail) had the transaction been left open. 10 s is far beyond the
    // milliseconds it takes, so a loaded machine does not make it flake.
    {
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO things (id, label) VALUES ('t3', 'x')", &[]).await.unwrap();
    }
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        db.execute("INSERT INTO things (id, label) VALUES ('t3', 'again')", &[]),
    )
    .await
    .expect("a dropped transaction left its lock behind");
    assert_eq!(again.unwrap(), 1);
    let rows = db.query("SELECT label FROM things WHERE id = 't3'", &[], &LIMITS).await.unwrap();
    assert_eq!(rows.rows, [[Value::Text("again".into())]]);
    db.execute("DELETE FROM things WHERE id = 't3'", &[]).await.unwrap();
    assert_eq!(count(db.clone()).await, 1);

    // A failed statement inside a transaction leaves the earlier ones to
    // the caller's commit or rollback.
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO things (id, label) VALUES ('t4', 'x')", &[]).await.unwrap();
    assert!(tx.execute("INSERT INTO things (id, label) VALUES ('t4', 'x')", &[]).await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(count(db).await, 1);
}
on_both!(transactions_, transactions);

#[tokio::test]
async fn postgres_types_outside_the_dialect_get_a_clear_error() {
    let (db, _guard) = crate::postgres().await;
    match db.query("SELECT 1.5::numeric AS price", &[], &LIMITS).await {
        Err(SqlError::InvalidStatement(m)) => assert!(m.contains("NUMERIC") && m.contains("CAST"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_guard_is_applied_per_dialect() {
    assert!(matches!(guard::check(Dialect::Sqlite, "ATTACH 'x' AS y", &[], &LIMITS), Err(SqlError::AccessDenied(_))));
    assert!(guard::check(Dialect::Postgres, "SELECT 1", &[], &LIMITS).is_ok());
}

/// The database goes away and comes back: calls in between fail cleanly
/// with `unavailable`, and the pool recovers without a restart.
#[tokio::test]
async fn postgres_restart_is_survived() {
    let mut cluster = PgCluster::start().expect("a private cluster");
    let options =
        ConnectOptions { max_connections: 4, acquire_timeout: Duration::from_secs(2), ..ConnectOptions::default() };
    let db = Database::connect(&cluster.url, &options).await.unwrap();
    db.execute("CREATE TABLE kept (id TEXT PRIMARY KEY)", &[]).await.unwrap();
    db.execute("INSERT INTO kept VALUES ('before')", &[]).await.unwrap();

    cluster.stop();
    match db.query("SELECT id FROM kept", &[], &LIMITS).await {
        Err(SqlError::Unavailable(_)) => {}
        other => panic!("expected unavailable while the server is down, got {other:?}"),
    }

    cluster.start_server().unwrap();
    let rows = db.query("SELECT id FROM kept", &[], &LIMITS).await.expect("the pool reconnects");
    assert_eq!(rows.rows, [[Value::Text("before".into())]]);
}
