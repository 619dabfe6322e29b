//! Per-redeemer limits in `tessera_redeem`: each redeemer's share is claimed by a
//! conditional upsert in the same statement as the ticket's use, so the share and
//! the overall limit hold together under concurrency; tickets without the limit
//! get no redeemer row.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::{attempt, fixture, hash, limit};
use tessera_app::model::{RedemptionAttempt, TicketChanges};
use tessera_app::ports::{RedemptionStore, StoreError, TicketStore};
use tessera_domain::{Program, RedemptionFailure, TenantId};
use tessera_postgres::PgStore;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn by(program: &Program, code: &str, redeemer: Option<&str>) -> RedemptionAttempt {
    RedemptionAttempt {
        redeemer: redeemer.map(|id| hash(&format!("redeemer:{id}"))),
        ..attempt(program, code, None)
    }
}

fn race(
    store: &PgStore,
    attempts: Vec<RedemptionAttempt>,
) -> Vec<Result<tessera_app::model::Grant, RedemptionFailure>> {
    let barrier = Arc::new(Barrier::new(attempts.len()));
    let handles: Vec<_> = attempts
        .into_iter()
        .map(|attempt| {
            let (barrier, store) = (barrier.clone(), store.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.redeem(&attempt).unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn redeemer_rows(f: &common::Fixture, tenant: &TenantId) -> i64 {
    common::scalar(
        &f.db.pool(),
        "SELECT count(*) AS n FROM redeemer_uses WHERE tenant_id = $1",
        tenant,
    )
}

#[test]
fn twenty_parallel_redemptions_by_one_redeemer_of_a_one_per_redeemer_ticket_yield_one() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(24));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_redemptions = limit(100));
    let id = common::issue(&store, &program, "promo", |t| {
        t.per_redeemer_limit = Some(limit(1))
    });
    let results = race(&store, vec![by(&program, "promo", Some("ann")); 20]);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Err(RedemptionFailure::RedeemerLimitReached))
            .count(),
        19
    );
    let view = TicketStore::get(&store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.redemptions, 1);
    assert_eq!(
        common::scalar(
            &f.db.pool(),
            "SELECT coalesce(sum(uses), 0)::bigint AS n FROM redeemer_uses WHERE tenant_id = $1",
            &tenant
        ),
        1
    );
}

#[test]
fn twenty_redeemers_of_a_ten_use_shared_ticket_get_ten_uses_and_the_rest_give_their_claims_back() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(24));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_redemptions = limit(10));
    let id = common::issue(&store, &program, "promo", |t| {
        t.per_redeemer_limit = Some(limit(1))
    });
    let attempts = (0..20)
        .map(|i| by(&program, "promo", Some(&format!("user-{i}"))))
        .collect();
    let results = race(&store, attempts);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Err(RedemptionFailure::TicketExhausted))
            .count(),
        10
    );
    assert_eq!(
        TicketStore::get(&store, &tenant, &id)
            .unwrap()
            .ticket
            .redemptions,
        10
    );
    // A redeemer's count moves iff the ticket's does.
    assert_eq!(
        common::scalar(
            &f.db.pool(),
            "SELECT coalesce(sum(uses), 0)::bigint AS n FROM redeemer_uses WHERE tenant_id = $1",
            &tenant
        ),
        10
    );
}

#[test]
fn a_ticket_with_a_share_needs_a_redeemer_and_counts_each_one_apart() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "shared", |t| {
        t.per_redeemer_limit = Some(limit(2))
    });
    assert_eq!(
        f.store.redeem(&by(&program, "shared", None)).unwrap(),
        Err(RedemptionFailure::RedeemerRequired)
    );
    for _ in 0..2 {
        assert!(f
            .store
            .redeem(&by(&program, "shared", Some("ann")))
            .unwrap()
            .is_ok());
    }
    assert_eq!(
        f.store
            .redeem(&by(&program, "shared", Some("ann")))
            .unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
    assert!(f
        .store
        .redeem(&by(&program, "shared", Some("bob")))
        .unwrap()
        .is_ok());
    assert_eq!(common::events(&f.db.pool(), &tenant, "ticket.redeemed"), 3);
}

#[test]
fn a_ticket_without_a_share_writes_no_redeemer_row_whoever_redeems() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "plain", |_| {});
    assert!(f
        .store
        .redeem(&by(&program, "plain", None))
        .unwrap()
        .is_ok());
    assert!(f
        .store
        .redeem(&by(&program, "plain", Some("ann")))
        .unwrap()
        .is_ok());
    assert_eq!(redeemer_rows(&f, &tenant), 0);
}

#[test]
fn a_refill_raises_the_ticket_limit_versioned_with_an_event() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_redemptions = limit(10));
    let id = common::issue(&f.store, &program, "refill", |t| {
        t.max_redemptions = Some(limit(1))
    });
    assert!(f
        .store
        .redeem(&attempt(&program, "refill", None))
        .unwrap()
        .is_ok());
    assert_eq!(
        f.store.redeem(&attempt(&program, "refill", None)).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    let before = TicketStore::get(&f.store, &tenant, &id).unwrap();
    let changes = TicketChanges {
        state: None,
        max_redemptions: Some(limit(3)),
    };
    let after = f
        .store
        .update_ticket(&tenant, &id, changes, before.ticket.version, common::now())
        .unwrap();
    assert_eq!(after.ticket.version, before.ticket.version + 1);
    assert_eq!(after.remaining(), 2);
    assert_eq!(common::events(&f.db.pool(), &tenant, "ticket.updated"), 1);
    assert!(f
        .store
        .redeem(&attempt(&program, "refill", None))
        .unwrap()
        .is_ok());
    // The program's limit still caps a refill.
    let huge = TicketChanges {
        state: None,
        max_redemptions: Some(limit(1000)),
    };
    let capped = f
        .store
        .update_ticket(&tenant, &id, huge, after.ticket.version, common::now())
        .unwrap();
    assert_eq!(capped.remaining(), 10 - 2);
    // A stale version changes nothing.
    assert_eq!(
        f.store
            .update_ticket(&tenant, &id, changes, after.ticket.version, common::now()),
        Err(StoreError::VersionConflict)
    );
}

/// A hold claims one of its redeemer's uses like a redemption does, so holds and
/// redemptions together never exceed a redeemer's share, under concurrency.
#[test]
fn holds_count_against_the_redeemers_share_as_redemptions_do() {
    use chrono::Duration;
    use tessera_app::ports::LifecycleStore;
    use tessera_domain::HoldId;

    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(24));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_redemptions = limit(100));
    let id = common::issue(&store, &program, "promo", |t| {
        t.per_redeemer_limit = Some(limit(2))
    });
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|n| {
            let (barrier, store, program) = (barrier.clone(), store.clone(), program.clone());
            std::thread::spawn(move || {
                let attempt = by(&program, "promo", Some("ann"));
                barrier.wait();
                if n % 2 == 0 {
                    store
                        .hold(
                            &attempt,
                            &HoldId::generate(),
                            common::now() + Duration::seconds(60),
                        )
                        .unwrap()
                        .map(|_| ())
                } else {
                    store.redeem(&attempt).unwrap().map(|_| ())
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| *r == Err(RedemptionFailure::RedeemerLimitReached)));
    let view = TicketStore::get(&store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.redemptions + view.held, 2);
    // Another redeemer still has a share of its own.
    let other = by(&program, "promo", Some("bob"));
    assert!(store
        .hold(
            &other,
            &HoldId::generate(),
            common::now() + Duration::seconds(60)
        )
        .unwrap()
        .is_ok());
}
