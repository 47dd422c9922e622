//! Applying component migrations.

use polyscale_host::capabilities::sql::guard;
use polyscale_host::database::migrations::{self, Migration, MigrationError};
use polyscale_host::database::{Database, SqlLimits, Value};

use crate::on_both;

fn migration(version: u32, statements: &[&str]) -> Migration {
    Migration { version, name: format!("m{version}"), statements: statements.iter().map(|s| s.to_string()).collect() }
}

async fn ready(db: &Database) {
    migrations::ensure_table(db).await.unwrap();
}

/// Applies as the host applies a component's migrations: through the
/// `sql` guard.
async fn apply_migrations(
    db: &Database,
    component: &str,
    wanted: &[Migration],
    limits: &SqlLimits,
) -> Result<Vec<u32>, MigrationError> {
    migrations::apply(
        db,
        component,
        wanted,
        limits,
        |d, s, l| guard::check(d, s, &[], l),
        polyscale_host::database::RunAs::Component { deadline: None },
    )
    .await
}

async fn tables(db: &Database) -> i64 {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM _polyscale_migrations";
    match db.query(sql, &[], &SqlLimits::default()).await.unwrap().rows[0][0] {
        Value::Integer(n) => n,
        _ => unreachable!(),
    }
}

async fn applies_once_in_order(db: Database) {
    ready(&db).await;
    let v1 = vec![migration(1, &["CREATE TABLE a (id TEXT PRIMARY KEY)"])];
    assert_eq!(apply_migrations(&db, "c", &v1, &SqlLimits::default()).await.unwrap(), [1]);
    assert_eq!(apply_migrations(&db, "c", &v1, &SqlLimits::default()).await.unwrap(), Vec::<u32>::new());

    let v2 =
        vec![v1[0].clone(), migration(2, &["ALTER TABLE a ADD COLUMN name TEXT", "CREATE INDEX a_name ON a (name)"])];
    assert_eq!(apply_migrations(&db, "c", &v2, &SqlLimits::default()).await.unwrap(), [2]);
    // An older version (fewer migrations) is accepted: rollback.
    assert_eq!(apply_migrations(&db, "c", &v1, &SqlLimits::default()).await.unwrap(), Vec::<u32>::new());
    // Another component's migrations are its own.
    let other = vec![migration(1, &["CREATE TABLE b (id TEXT PRIMARY KEY)"])];
    assert_eq!(apply_migrations(&db, "other", &other, &SqlLimits::default()).await.unwrap(), [1]);
    assert_eq!(tables(&db).await, 3);
}
on_both!(applies_once_in_order_, applies_once_in_order);

async fn refuses_bad_histories(db: Database) {
    ready(&db).await;
    let v1 = vec![migration(1, &["CREATE TABLE a (id TEXT PRIMARY KEY)"])];
    apply_migrations(&db, "c", &v1, &SqlLimits::default()).await.unwrap();

    let changed = vec![migration(1, &["CREATE TABLE a (id TEXT PRIMARY KEY, extra TEXT)"])];
    assert!(matches!(
        apply_migrations(&db, "c", &changed, &SqlLimits::default()).await,
        Err(MigrationError::Changed { version: 1, .. })
    ));

    let gap = vec![v1[0].clone(), migration(3, &["SELECT 1"])];
    assert!(matches!(
        apply_migrations(&db, "c", &gap, &SqlLimits::default()).await,
        Err(MigrationError::OutOfOrder { expected: 2, found: 3 })
    ));

    // A failing migration leaves nothing behind: neither its first
    // statement nor its record.
    let failing =
        vec![v1[0].clone(), migration(2, &["CREATE TABLE half (id TEXT)", "CREATE TABLE broken (syntax error"])];
    assert!(matches!(
        apply_migrations(&db, "c", &failing, &SqlLimits::default()).await,
        Err(MigrationError::Failed { version: 2, .. })
    ));
    assert!(db.query("SELECT * FROM half", &[], &SqlLimits::default()).await.is_err());
    assert_eq!(tables(&db).await, 1);

    // Migrations may not touch the host's tables.
    let sneaky = vec![v1[0].clone(), migration(2, &["DELETE FROM _polyscale_migrations"])];
    assert!(matches!(
        apply_migrations(&db, "c", &sneaky, &SqlLimits::default()).await,
        Err(MigrationError::Failed { version: 2, .. })
    ));
    assert_eq!(tables(&db).await, 1);
}
on_both!(refuses_bad_histories_, refuses_bad_histories);

#[tokio::test]
async fn replicas_migrating_together_apply_each_migration_once() {
    let (db, _guard) = crate::postgres().await;
    ready(&db).await;
    let all = vec![
        migration(1, &["CREATE TABLE a (id TEXT PRIMARY KEY)"]),
        migration(2, &["CREATE TABLE b (id TEXT PRIMARY KEY)"]),
    ];
    let runs = (0..4).map(|_| {
        let db = db.clone();
        let all = all.clone();
        async move { apply_migrations(&db, "c", &all, &SqlLimits::default()).await }
    });
    let results = futures::future::join_all(runs).await;
    let applied: usize = results.into_iter().map(|r| r.expect("no replica fails").len()).sum();
    assert_eq!(applied, 2);
}
