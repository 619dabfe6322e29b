//! A redeemer's share (perRedeemerLimit) comes back with the use it came with: a
//! released or expired hold and a rolled-back redemption give back both the
//! ticket's use and the redeemer's, exactly once, under concurrency; a confirmed
//! hold keeps it spent.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier, Mutex};

use chrono::{DateTime, Utc};
use common::{at, attempt_at, fixture, hash, limit, now};
use tessera_app::model::RedemptionAttempt;
use tessera_app::ports::{LifecycleStore, RedemptionStore, TicketStore};
use tessera_domain::{ApiKeyId, HoldId, Program, RedemptionFailure, TenantId, TicketId};
use tessera_postgres::PgStore;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn by_at(program: &Program, redeemer: &str, when: DateTime<Utc>) -> RedemptionAttempt {
    RedemptionAttempt {
        redeemer: Some(hash(&format!("redeemer:{redeemer}"))),
        ..attempt_at(program, "promo", None, when)
    }
}

fn by(program: &Program, redeemer: &str) -> RedemptionAttempt {
    by_at(program, redeemer, now())
}

/// A 100-use shared ticket whose redeemers get `share` uses each.
fn shared_ticket(store: &PgStore, share: i64) -> (Program, TicketId) {
    let tenant = common::tenant(store);
    let program = common::program(store, &tenant, |new| new.max_redemptions = limit(100));
    let id = common::issue(store, &program, "promo", |t| {
        t.per_redeemer_limit = Some(limit(share))
    });
    (program, id)
}

fn spent_shares(f: &common::Fixture, tenant: &TenantId) -> i64 {
    common::scalar(
        &f.db.pool(),
        "SELECT coalesce(sum(uses), 0)::bigint AS n FROM redeemer_uses WHERE tenant_id = $1",
        tenant,
    )
}

fn hold(store: &PgStore, attempt: &RedemptionAttempt, expires: DateTime<Utc>) -> HoldId {
    let id = HoldId::generate();
    store.hold(attempt, &id, expires).unwrap().unwrap();
    id
}

#[test]
fn a_released_hold_gives_the_redeemers_share_back() {
    let f = fixture();
    let (program, _) = shared_ticket(&f.store, 1);
    let held = hold(&f.store, &by(&program, "ann"), at(60));
    assert_eq!(
        f.store.redeem(&by(&program, "ann")).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
    LifecycleStore::release(&f.store, &program.tenant_id, &held, now())
        .unwrap()
        .unwrap();
    assert_eq!(spent_shares(&f, &program.tenant_id), 0);
    // Releasing again changes nothing (the share is not given back twice).
    LifecycleStore::release(&f.store, &program.tenant_id, &held, now())
        .unwrap()
        .unwrap();
    assert_eq!(spent_shares(&f, &program.tenant_id), 0);
    assert!(f.store.redeem(&by(&program, "ann")).unwrap().is_ok());
    assert_eq!(
        f.store.redeem(&by(&program, "ann")).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
}

#[test]
fn an_expired_hold_gives_the_redeemers_share_back_with_no_sweeper() {
    let f = fixture();
    let (program, id) = shared_ticket(&f.store, 1);
    hold(&f.store, &by(&program, "ann"), at(20));
    assert_eq!(
        f.store.redeem(&by_at(&program, "ann", at(19))).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
    // At the expiry instant the hold no longer counts, for the ticket nor for ann.
    let grant = f
        .store
        .redeem(&by_at(&program, "ann", at(20)))
        .unwrap()
        .unwrap();
    assert_eq!(grant.remaining, 99);
    let view = TicketStore::get(&f.store, &program.tenant_id, &id).unwrap();
    assert_eq!((view.ticket.redemptions, view.held), (1, 0));
    assert_eq!(spent_shares(&f, &program.tenant_id), 1);
    assert_eq!(
        f.store.redeem(&by_at(&program, "ann", at(21))).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
}

#[test]
fn a_confirmed_hold_keeps_the_share_and_its_rollback_gives_it_back_once() {
    let f = fixture();
    let (program, _) = shared_ticket(&f.store, 1);
    let tenant = &program.tenant_id;
    let held = hold(&f.store, &by(&program, "ann"), at(60));
    let grant = f.store.confirm(tenant, &held, now()).unwrap().unwrap();
    assert_eq!(
        f.store.redeem(&by(&program, "ann")).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
    let key = ApiKeyId::generate();
    f.store
        .rollback(tenant, &grant.redemption_id, &key, None, now())
        .unwrap()
        .unwrap();
    assert!(f
        .store
        .rollback(tenant, &grant.redemption_id, &key, None, now())
        .unwrap()
        .is_err());
    assert_eq!(spent_shares(&f, tenant), 0);
    assert!(f.store.redeem(&by(&program, "ann")).unwrap().is_ok());
    assert_eq!(spent_shares(&f, tenant), 1);
}

#[test]
fn a_rollback_gives_back_only_the_share_of_the_redeemer_who_redeemed() {
    let f = fixture();
    let (program, _) = shared_ticket(&f.store, 1);
    let tenant = &program.tenant_id;
    let ann = f.store.redeem(&by(&program, "ann")).unwrap().unwrap();
    f.store.redeem(&by(&program, "bob")).unwrap().unwrap();
    f.store
        .rollback(
            tenant,
            &ann.redemption_id,
            &ApiKeyId::generate(),
            None,
            now(),
        )
        .unwrap()
        .unwrap();
    assert!(f.store.redeem(&by(&program, "ann")).unwrap().is_ok());
    assert_eq!(
        f.store.redeem(&by(&program, "bob")).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
}

/// Twenty threads race to roll back one redemption while twenty more of the same
/// redeemer race to redeem: the share comes back once, so exactly one of the
/// redeemers gets it, and the redeemer's count matches the ticket's.
#[test]
fn racing_rollbacks_and_redemptions_give_the_share_back_exactly_once() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(24));
    let (program, id) = shared_ticket(&store, 1);
    let tenant = program.tenant_id.clone();
    let first = store.redeem(&by(&program, "ann")).unwrap().unwrap();
    let barrier = Arc::new(Barrier::new(40));
    let handles: Vec<_> = (0..40)
        .map(|n| {
            let (barrier, store, program) = (barrier.clone(), store.clone(), program.clone());
            let (tenant, redemption) = (tenant.clone(), first.redemption_id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if n % 2 == 0 {
                    let key = ApiKeyId::generate();
                    (
                        "rollback",
                        store
                            .rollback(&tenant, &redemption, &key, None, now())
                            .unwrap()
                            .is_ok(),
                    )
                } else {
                    (
                        "redeem",
                        store.redeem(&by(&program, "ann")).unwrap().is_ok(),
                    )
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won = |what| results.iter().filter(|(w, ok)| *w == what && *ok).count();
    assert_eq!(won("rollback"), 1, "{results:?}");
    // The redemptions that ran before the rollback committed were refused; at most
    // one ran after it and took the share back.
    let view = TicketStore::get(&store, &tenant, &id).unwrap();
    assert!(won("redeem") <= 1, "{results:?}");
    assert_eq!(
        i64::from(view.ticket.redemptions),
        spent_shares(&f, &tenant)
    );
    assert_eq!(view.ticket.redemptions as usize, won("redeem"));
}

/// Holds of one redeemer made and released over and over, in parallel, leave the
/// share whole: afterwards the redeemer has all of it.
#[test]
fn parallel_hold_and_release_cycles_leave_the_share_whole() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(24));
    let (program, id) = shared_ticket(&store, 2);
    let barrier = Arc::new(Barrier::new(10));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (barrier, store, program) = (barrier.clone(), store.clone(), program.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut held = 0;
                for _ in 0..5 {
                    let id = HoldId::generate();
                    if store
                        .hold(&by(&program, "ann"), &id, at(60))
                        .unwrap()
                        .is_ok()
                    {
                        held += 1;
                        LifecycleStore::release(&store, &program.tenant_id, &id, now())
                            .unwrap()
                            .unwrap();
                    }
                }
                held
            })
        })
        .collect();
    let held: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(held >= 1);
    assert_eq!(spent_shares(&f, &program.tenant_id), 0);
    let view = TicketStore::get(&store, &program.tenant_id, &id).unwrap();
    assert_eq!((view.ticket.redemptions, view.held), (0, 0));
    for _ in 0..2 {
        assert!(store.redeem(&by(&program, "ann")).unwrap().is_ok());
    }
    assert_eq!(
        store.redeem(&by(&program, "ann")).unwrap(),
        Err(RedemptionFailure::RedeemerLimitReached)
    );
}
