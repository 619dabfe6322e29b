//! Invariant 1 under real concurrency: many threads, each on its own pooled
//! connection, released together by a barrier against one PostgreSQL.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::{attempt, fixture, hash, limit, max_tickets, new_ticket, now, subject};
use tessera_app::ports::{ProgramStore, RedemptionStore, StandaloneStore, StoreError, TicketStore};
use tessera_domain::{
    PageRequest, RedemptionFailure, StandaloneTicket, StandaloneTicketId, TenantId, Uses,
};
use tessera_postgres::PgStore;

/// Connections per test: the server's default max_connections is 100 and other
/// suites may share it, so the heavy tests below also run one at a time.
const POOL_SIZE: u32 = 32;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `work(store, i)` on `threads` threads started at the same instant.
fn race<T: Send + 'static>(
    store: &PgStore,
    threads: usize,
    work: impl Fn(&PgStore, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(threads));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (barrier, work, store) = (barrier.clone(), work.clone(), store.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(&store, i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn heavy_fixture() -> (std::sync::MutexGuard<'static, ()>, common::Fixture, PgStore) {
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(POOL_SIZE));
    (guard, f, store)
}

fn tally(results: &[Result<tessera_app::model::Grant, RedemptionFailure>]) -> (usize, usize) {
    let successes = results.iter().filter(|r| r.is_ok()).count();
    let exhausted = results
        .iter()
        .filter(|r| **r == Err(RedemptionFailure::TicketExhausted))
        .count();
    (successes, exhausted)
}

#[test]
fn a_single_use_ticket_is_redeemed_once_by_64_threads() {
    let (_guard, f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |_| {});
    let id = common::issue(&store, &program, "code", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let redemption = attempt(&program, "code", None);
    let results = race(&store, 64, move |store, _| {
        store.redeem(&redemption).unwrap()
    });
    assert_eq!(tally(&results), (1, 63));
    let view = TicketStore::get(&store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.redemptions, 1);
    let pool = f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 1);
    assert_eq!(common::events(&pool, &tenant, "ticket.exhausted"), 1);
    assert_eq!(
        common::events(&pool, &tenant, "ticket.redemption_failed"),
        63
    );
}

#[test]
fn a_five_use_ticket_is_redeemed_five_times_by_40_threads() {
    let (_guard, _f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_redemptions = limit(5));
    let id = common::issue(&store, &program, "code", |_| {});
    let redemption = attempt(&program, "code", None);
    let results = race(&store, 40, move |store, _| {
        store.redeem(&redemption).unwrap()
    });
    assert_eq!(tally(&results), (5, 35));
    let mut remaining: Vec<_> = results.iter().flatten().map(|r| r.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4], "each success saw its own count");
    assert_eq!(
        TicketStore::get(&store, &tenant, &id)
            .unwrap()
            .ticket
            .redemptions,
        5
    );
}

#[test]
fn a_program_capped_at_20_issues_exactly_20_of_60_concurrent_tickets() {
    let (_guard, _f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_tickets = max_tickets(20));
    let shared = program.clone();
    let results = race(&store, 60, move |store, i| {
        store.issue(&new_ticket(&shared, &format!("code-{i}"), |_| {}), now())
    });
    let issued = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| **r == Err(StoreError::MaxTicketsReached))
        .count();
    assert_eq!((issued, refused), (20, 40));
    assert_eq!(
        ProgramStore::get(&store, &tenant, &program.id)
            .unwrap()
            .issued_tickets,
        20
    );
    let listed = TicketStore::list(&store, &tenant, &program.id, PageRequest::default()).unwrap();
    assert_eq!(listed.total, 20);
}

#[test]
fn one_subject_gets_one_active_ticket_under_concurrency() {
    let (_guard, _f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.one_active_per_subject = true);
    let shared = program.clone();
    let results = race(&store, 30, move |store, i| {
        let new = new_ticket(&shared, &format!("code-{i}"), |t| {
            t.subject = Some(subject("ann"))
        });
        store.issue(&new, now())
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| *r == Err(StoreError::SubjectHasActiveTicket)));
    assert_eq!(
        ProgramStore::get(&store, &tenant, &program.id)
            .unwrap()
            .issued_tickets,
        1
    );
}

fn standalone(tenant: &TenantId, uses: i64) -> StandaloneTicket {
    let uses = Uses::try_from(uses).unwrap();
    StandaloneTicket {
        id: StandaloneTicketId::generate(),
        tenant_id: tenant.clone(),
        name: None,
        permissions: None,
        payload: None,
        total_uses: uses,
        uses_left: uses.limit(),
        expires_at: None,
        created_at: now(),
    }
}

#[test]
fn a_five_use_standalone_ticket_is_used_five_times_by_50_threads() {
    let (_guard, _f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    store
        .create(&standalone(&tenant, 5), hash("t"), 100, now())
        .unwrap();
    let shared = tenant.clone();
    let results = race(&store, 50, move |store, _| {
        store.use_ticket(&shared, hash("t"), now()).unwrap()
    });
    let mut left: Vec<_> = results
        .iter()
        .flatten()
        .map(|u| u.uses_left.count())
        .collect();
    left.sort_unstable();
    assert_eq!(left, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(
        StandaloneStore::list(&store, &tenant, PageRequest::default(), now())
            .unwrap()
            .total,
        0
    );
}

#[test]
fn the_standalone_cap_holds_under_concurrency() {
    let (_guard, _f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let shared = tenant.clone();
    let results = race(&store, 40, move |store, i| {
        store.create(&standalone(&shared, 1), hash(&format!("t{i}")), 15, now())
    });
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 15);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| *r == Err(StoreError::MaxTicketsReached)));
    assert_eq!(
        StandaloneStore::list(&store, &tenant, PageRequest::default(), now())
            .unwrap()
            .total,
        15
    );
}

#[test]
fn concurrent_wrong_emails_lock_once_and_never_redeem() {
    let (_guard, f, store) = heavy_fixture();
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |_| {});
    common::issue(&store, &program, "code", |t| {
        t.email = Some(common::email("ann@example.com"))
    });
    let wrong = attempt(&program, "code", Some("eve@example.com"));
    let results = race(&store, 20, move |store, _| store.redeem(&wrong).unwrap());
    let mismatches = results
        .iter()
        .filter(|r| **r == Err(RedemptionFailure::EmailMismatch))
        .count();
    let locked = results
        .iter()
        .filter(|r| **r == Err(RedemptionFailure::TicketLocked))
        .count();
    assert_eq!((mismatches, locked), (5, 15));
    assert_eq!(common::events(&f.db.pool(), &tenant, "ticket.locked"), 1);
}
