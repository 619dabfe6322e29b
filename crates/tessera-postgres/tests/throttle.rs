//! The failure throttle's shared counts (`FailureLedger` on `throttle_windows`):
//! one atomic upsert per failure, exact under concurrent replicas.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::{Arc, Barrier};

use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::ports::FailureLedger;
use tessera_app::throttle::FailureSubject;
use tessera_domain::ProgramId;
use tessera_postgres::testing::TestDatabase;
use tessera_postgres::PgStore;

const MINUTE: i64 = 29_000_000;

fn client(last: u8) -> FailureSubject {
    FailureSubject::Client(IpAddr::from([192, 0, 2, last]))
}

#[test]
fn each_failure_adds_one_and_returns_the_counts_in_the_order_asked() {
    let database = TestDatabase::new();
    let store = PgStore::new(database.pool());
    let program = FailureSubject::Program(ProgramId::generate());
    // Asked in an order the statement does not use (it sorts to lock in order).
    let subjects = [program.clone(), client(1)];
    assert_eq!(store.add_failures(&subjects, MINUTE).unwrap(), vec![1, 1]);
    assert_eq!(store.add_failures(&[client(1)], MINUTE).unwrap(), vec![2]);
    assert_eq!(store.add_failures(&subjects, MINUTE).unwrap(), vec![2, 3]);
    assert_eq!(
        store.add_failures(&[client(1)], MINUTE + 1).unwrap(),
        vec![1],
        "a new minute counts from one"
    );
    assert_eq!(
        store.add_failures(&[client(2)], MINUTE).unwrap(),
        vec![1],
        "another client has its own count"
    );
}

#[test]
fn concurrent_failures_on_many_connections_are_all_counted() {
    let database = TestDatabase::new();
    let store = PgStore::new(database.pool_with_size(16));
    let program = FailureSubject::Program(ProgramId::generate());
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|n| {
            let (store, barrier, program) = (store.clone(), barrier.clone(), program.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Each thread's own client and the program they all share: row
                // locks in one order, so no deadlock between them.
                let client = client(u8::try_from(n % 4).unwrap());
                (0..10)
                    .map(|_| {
                        store
                            .add_failures(&[client.clone(), program.clone()], MINUTE)
                            .unwrap()[1]
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen: Vec<u32> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=160).collect::<Vec<u32>>(),
        "every failure saw its own count: none lost, none doubled"
    );
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = BigInt)]
    minute: i64,
}

#[test]
fn forgetting_drops_only_the_minutes_before() {
    let database = TestDatabase::new();
    let store = PgStore::new(database.pool());
    for minute in [MINUTE - 2, MINUTE - 1, MINUTE, MINUTE + 1] {
        store.add_failures(&[client(1)], minute).unwrap();
    }
    assert_eq!(store.forget_before(MINUTE).unwrap(), 2);
    let mut conn = database.pool().get().unwrap();
    // Hand-written: reads what is left, independently of the adapter.
    let left: Vec<Row> = sql_query("SELECT subject, minute FROM throttle_windows ORDER BY minute")
        .load(&mut conn)
        .unwrap();
    let left: Vec<_> = left
        .iter()
        .map(|row| (row.subject.as_str(), row.minute))
        .collect();
    assert_eq!(
        left,
        vec![
            ("client:192.0.2.1", MINUTE),
            ("client:192.0.2.1", MINUTE + 1)
        ]
    );
}

#[test]
fn the_table_is_unlogged() {
    let database = TestDatabase::new();
    let mut conn = database.pool().get().unwrap();
    #[derive(QueryableByName)]
    struct Persistence {
        #[diesel(sql_type = Text)]
        relpersistence: String,
    }
    // Hand-written: a catalog read, not part of `schema.rs`.
    let found: Persistence =
        sql_query("SELECT relpersistence::text FROM pg_class WHERE relname = 'throttle_windows'")
            .get_result(&mut conn)
            .unwrap();
    assert_eq!(
        found.relpersistence, "u",
        "no WAL, no fsync on the failure path"
    );
}
