//! The failure throttle's shared counts (`FailureLedger` on `throttle_windows`):
//! one atomic upsert per failure, exact under concurrent replicas, and the
//! refusal statement that counts it itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Barrier};

use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::model::SharedFailure;
use tessera_app::ports::{FailureLedger, RedemptionStore};
use tessera_app::throttle::FailureSubject;
use tessera_domain::{ProgramId, RedemptionFailure};
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

/// A refused attempt carrying its shared failure: the store's refusal statement
/// counts it and reports the counts; a success counts nothing.
#[test]
fn a_refusal_counts_its_shared_failure_in_the_same_statement() {
    let f = common::fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "KNOWN-CODE", |_| {});
    let subjects = vec![client(9), FailureSubject::Program(program.id.clone())];
    let minute = MINUTE + 5;
    let with_shared = |code: &str| {
        let mut attempt = common::attempt(&program, code, None);
        attempt.shared_failure = Some(SharedFailure::new(subjects.clone(), minute));
        attempt
    };

    let unknown = with_shared("NO-SUCH-CODE");
    assert_eq!(
        f.store.redeem(&unknown).unwrap().map(|_| ()),
        Err(RedemptionFailure::TicketNotFound)
    );
    let reported = unknown.shared_failure.as_ref().unwrap().reported();
    assert_eq!(reported, Some(&[1, 1][..]));

    let known = with_shared("KNOWN-CODE");
    assert!(f.store.redeem(&known).unwrap().is_ok());
    assert_eq!(
        known.shared_failure.as_ref().unwrap().reported(),
        None,
        "a success counts no failure"
    );

    let probed = SharedFailure::new(vec![client(9)], minute);
    f.store
        .probe(&program.id, common::now(), Some(probed.clone()))
        .unwrap();
    assert_eq!(
        probed.reported(),
        Some(&[2][..]),
        "the probe counts as an unknown code does"
    );

    assert_eq!(
        f.store.add_failures(&subjects, minute).unwrap(),
        vec![3, 2],
        "the statements wrote the shared counts"
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
