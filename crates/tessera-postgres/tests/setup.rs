mod common;

use diesel::{Connection, PgConnection};
use diesel_migrations::MigrationHarness;
use tessera_app::ports::{HealthProbe, StoreError};
use tessera_postgres::testing::TestDatabase;
use tessera_postgres::{connect, ensure_database, run_migrations, PgStore, MIGRATIONS};

#[test]
fn migrations_are_reversible_and_reapply() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    let reverted = conn.revert_all_migrations(MIGRATIONS).unwrap();
    assert!(!reverted.is_empty());
    let pool = db.pool();
    let applied = run_migrations(&pool).unwrap();
    assert_eq!(applied.len(), reverted.len());
    // Now up to date: a second run applies nothing.
    assert!(run_migrations(&pool).unwrap().is_empty());
    // And the schema works after the round trip.
    let store = PgStore::new(pool);
    let tenant = common::tenant(&store);
    common::program(&store, &tenant, |_| {});
}

#[test]
fn concurrent_migration_runs_do_not_collide() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    conn.revert_all_migrations(MIGRATIONS).unwrap();
    drop(conn);
    let url = db.url().to_owned();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || run_migrations(&connect(&url, 1).unwrap()).unwrap())
        })
        .map(|handle| handle.join().unwrap())
        .collect();
    let applied: usize = runs.iter().map(Vec::len).sum();
    assert_eq!(
        applied,
        migration_count(),
        "each migration is applied by exactly one run"
    );
}

#[test]
fn ensure_database_creates_a_missing_database_once() {
    let db = TestDatabase::new();
    let sibling = format!("{}_created", db.name());
    let url = db.url().replace(db.name(), &sibling);
    let _cleanup = DropDatabase(db.url().to_owned(), sibling.clone());
    assert!(ensure_database(&url).unwrap(), "created");
    assert!(!ensure_database(&url).unwrap(), "already there");
    let pool = connect(&url, 1).unwrap();
    assert_eq!(run_migrations(&pool).unwrap().len(), migration_count());
    PgStore::new(pool).ping().unwrap();
}

/// How many migrations the workspace has: one folder each.
fn migration_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .expect("the migrations folder")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().is_dir()))
        .count()
}

/// Drops the sibling database a test created, from the test database's server.
struct DropDatabase(String, String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        use diesel::RunQueryDsl;
        if let Ok(mut conn) = PgConnection::establish(&self.0) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.1
            ))
            .execute(&mut conn);
        }
    }
}

#[test]
fn setup_errors_never_show_the_password() {
    let url = "postgres://ann:hunter2secret@127.0.0.1:1/nowhere";
    let error = connect(url, 1).expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(!message.contains("hunter2secret"), "{message}");
    assert!(message.contains("***"), "{message}");
    let error = ensure_database(url).expect_err("unreachable");
    assert!(!error.to_string().contains("hunter2secret"));
    assert!(connect("mysql://x/y", 1).is_err());
    assert!(
        connect(url, 0).is_err(),
        "an empty pool is refused, not a panic"
    );
}

#[test]
fn ping_answers_while_the_database_is_up_and_fails_as_unavailable_after() {
    let db = TestDatabase::new();
    let store = PgStore::new(db.pool());
    store.ping().unwrap();
    let url = db.url().to_owned();
    drop(db);
    // The database is gone: a new pool cannot connect, an old one reports Unavailable.
    assert!(connect(&url, 1).is_err());
    assert!(matches!(store.ping(), Err(StoreError::Unavailable(_))));
}

#[test]
fn test_databases_are_distinct_and_dropped() {
    let first = TestDatabase::new();
    let second = TestDatabase::new();
    assert_ne!(first.name(), second.name());
    let url = first.url().to_owned();
    drop(first);
    assert!(PgConnection::establish(&url).is_err());
}

/// Every pooled connection runs under `statement_timeout`: a statement that takes
/// longer is cancelled and reported as `Unavailable` (a 503 the client may retry),
/// never left holding its connection and locks.
#[test]
fn statements_that_run_too_long_are_cancelled_as_unavailable() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::new();
    let pool =
        tessera_postgres::connect_with_timeout(db.url(), 1, std::time::Duration::from_millis(200))
            .unwrap();
    let mut conn = pool.get().unwrap();
    let slow = diesel::sql_query("SELECT pg_sleep(2)").execute(&mut conn);
    let message = slow.expect_err("cancelled").to_string();
    assert!(message.contains("statement timeout"), "{message}");
    drop(conn);
    // The same connection serves the next statement, still under the timeout.
    let mut conn = pool.get().unwrap();
    assert!(diesel::sql_query("SELECT pg_sleep(0.01)")
        .execute(&mut conn)
        .is_ok());
    assert!(diesel::sql_query("SELECT pg_sleep(1)")
        .execute(&mut conn)
        .is_err());
    drop(conn);
    // Migrations lift it for their own statements and put it back.
    assert!(run_migrations(&pool).unwrap().is_empty());
    let mut conn = pool.get().unwrap();
    assert!(diesel::sql_query("SELECT pg_sleep(1)")
        .execute(&mut conn)
        .is_err());
}
