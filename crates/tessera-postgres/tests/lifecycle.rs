//! The redemption lifecycle against real PostgreSQL: validation writes nothing,
//! holds reserve uses (under concurrency, and expiry frees them with no sweeper),
//! confirm/release/rollback move each use exactly once.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier, Mutex};

use chrono::Duration;
use common::{at, attempt, attempt_at, fixture, limit, now};
use tessera_app::lifecycle::{HoldRefusal, RollbackRefusal};
use tessera_app::ports::{LifecycleStore, RedemptionStore, TicketStore};
use tessera_domain::{
    ApiKeyId, HoldId, HoldState, RedemptionFailure, RedemptionId, RollbackReason, TicketState,
};
use tessera_postgres::PgStore;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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

fn three_use_ticket(store: &PgStore) -> (tessera_domain::Program, tessera_domain::TicketId) {
    let tenant = common::tenant(store);
    let program = common::program(store, &tenant, |_| {});
    let id = common::issue(store, &program, "code", |t| {
        t.max_redemptions = Some(limit(3))
    });
    (program, id)
}

fn redemptions(
    store: &PgStore,
    program: &tessera_domain::Program,
    id: &tessera_domain::TicketId,
) -> u32 {
    TicketStore::get(store, &program.tenant_id, id)
        .unwrap()
        .ticket
        .redemptions
}

#[test]
fn thirty_parallel_holds_on_a_three_use_ticket_give_exactly_three() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(32));
    let (program, _id) = three_use_ticket(&store);
    let tried = attempt(&program, "code", None);
    let results = race(&store, 30, move |store, _| {
        store
            .hold(&tried, &HoldId::generate(), now() + Duration::seconds(60))
            .unwrap()
    });
    let held = results.iter().filter(|r| r.is_ok()).count();
    let exhausted = results
        .iter()
        .filter(|r| **r == Err(RedemptionFailure::TicketExhausted))
        .count();
    assert_eq!((held, exhausted), (3, 27));
    // Held uses are not redeemable, and validation agrees.
    assert_eq!(
        store.redeem(&attempt(&program, "code", None)).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    assert_eq!(
        store.validate(&attempt(&program, "code", None)).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    assert_eq!(
        common::events(&f.db.pool(), &program.tenant_id, "ticket.held"),
        3
    );
}

#[test]
fn holds_and_redemptions_racing_never_exceed_the_limit() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(32));
    let (program, id) = three_use_ticket(&store);
    let tried = attempt(&program, "code", None);
    let results = race(&store, 30, move |store, i| {
        if i % 2 == 0 {
            store.redeem(&tried).unwrap().is_ok()
        } else {
            store
                .hold(&tried, &HoldId::generate(), now() + Duration::seconds(60))
                .unwrap()
                .is_ok()
        }
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 3);
    let held: i64 = common::scalar(
        &f.db.pool(),
        "SELECT count(*) AS n FROM holds WHERE tenant_id = $1 AND state = 'held'",
        &program.tenant_id,
    );
    assert_eq!(i64::from(redemptions(&store, &program, &id)) + held, 3);
}

#[test]
fn an_expired_hold_frees_its_use_with_no_sweeper() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    for _ in 0..3 {
        f.store
            .hold(
                &attempt(&program, "code", None),
                &HoldId::generate(),
                at(20),
            )
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        f.store
            .redeem(&attempt_at(&program, "code", None, at(19)))
            .unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    // At the expiry instant the holds no longer count: the redemption reaps them.
    let grant = f
        .store
        .redeem(&attempt_at(&program, "code", None, at(20)))
        .unwrap()
        .unwrap();
    assert_eq!(grant.remaining, 2);
    assert_eq!(redemptions(&f.store, &program, &id), 1);
}

#[test]
fn confirm_turns_the_held_use_into_a_redemption_once() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let hold_id = HoldId::generate();
    let hold = f
        .store
        .hold(&attempt(&program, "code", None), &hold_id, at(60))
        .unwrap()
        .unwrap();
    assert_eq!((hold.state, hold.remaining), (HoldState::Held, 2));
    let tenant = &program.tenant_id;
    let grant = f.store.confirm(tenant, &hold_id, now()).unwrap().unwrap();
    assert_eq!((grant.ticket_id.clone(), grant.remaining), (id.clone(), 2));
    assert_eq!(redemptions(&f.store, &program, &id), 1);
    assert_eq!(
        f.store.confirm(tenant, &hold_id, now()).unwrap(),
        Err(HoldRefusal::NotActive)
    );
    assert_eq!(
        LifecycleStore::release(&f.store, tenant, &hold_id, now()).unwrap(),
        Err(HoldRefusal::NotActive)
    );
    let stored = f.store.get_hold(tenant, &hold_id, now()).unwrap().unwrap();
    assert_eq!((stored.state, stored.remaining), (HoldState::Confirmed, 2));
    // The confirmed use is a redemption like any other: it can be rolled back.
    let key = ApiKeyId::generate();
    let back = f
        .store
        .rollback(tenant, &grant.redemption_id, &key, None, now())
        .unwrap()
        .unwrap();
    assert_eq!(back.remaining, 3);
    let pool = f.db.pool();
    assert_eq!(common::events(&pool, tenant, "ticket.redeemed"), 1);
}

#[test]
fn an_expired_or_unknown_hold_cannot_be_confirmed() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let tenant = &program.tenant_id;
    let hold_id = HoldId::generate();
    f.store
        .hold(&attempt(&program, "code", None), &hold_id, at(20))
        .unwrap()
        .unwrap();
    assert_eq!(
        f.store.confirm(tenant, &hold_id, at(20)).unwrap(),
        Err(HoldRefusal::NotActive)
    );
    assert_eq!(
        f.store
            .get_hold(tenant, &hold_id, at(20))
            .unwrap()
            .unwrap()
            .state,
        HoldState::Expired
    );
    assert_eq!(
        f.store.confirm(tenant, &HoldId::generate(), now()).unwrap(),
        Err(HoldRefusal::NotFound)
    );
    // Another tenant sees nothing.
    let other = common::tenant(&f.store);
    assert_eq!(f.store.get_hold(&other, &hold_id, now()).unwrap(), None);
    assert_eq!(redemptions(&f.store, &program, &id), 0);
}

#[test]
fn confirming_a_hold_on_a_revoked_ticket_fails_and_keeps_the_hold() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let tenant = &program.tenant_id;
    let hold_id = HoldId::generate();
    f.store
        .hold(&attempt(&program, "code", None), &hold_id, at(60))
        .unwrap()
        .unwrap();
    f.store.revoke(tenant, &id, now()).unwrap();
    assert_eq!(
        f.store.confirm(tenant, &hold_id, now()).unwrap(),
        Err(HoldRefusal::Failure(RedemptionFailure::TicketRevoked))
    );
    assert_eq!(
        f.store
            .get_hold(tenant, &hold_id, now())
            .unwrap()
            .unwrap()
            .state,
        HoldState::Held
    );
    assert_eq!(redemptions(&f.store, &program, &id), 0);
}

#[test]
fn a_released_hold_frees_its_use_and_leaves_no_redemption() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let hold_id = HoldId::generate();
    f.store
        .hold(&attempt(&program, "code", None), &hold_id, at(60))
        .unwrap()
        .unwrap();
    assert_eq!(
        LifecycleStore::release(&f.store, &tenant, &hold_id, now()).unwrap(),
        Ok(())
    );
    assert_eq!(
        LifecycleStore::release(&f.store, &tenant, &hold_id, now()).unwrap(),
        Ok(())
    );
    assert_eq!(
        f.store.confirm(&tenant, &hold_id, now()).unwrap(),
        Err(HoldRefusal::NotActive)
    );
    assert!(f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .is_ok());
    let pool = f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.hold_released"), 1);
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 1);
    assert_eq!(
        LifecycleStore::release(&f.store, &tenant, &HoldId::generate(), now()).unwrap(),
        Err(HoldRefusal::NotFound)
    );
}

#[test]
fn validation_checks_the_rules_and_writes_nothing_on_success() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let valid = f
        .store
        .validate(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    assert_eq!((valid.ticket_id, valid.remaining), (id.clone(), 3));
    assert_eq!(redemptions(&f.store, &program, &id), 0);
    let pool = f.db.pool();
    let tenant = &program.tenant_id;
    assert_eq!(
        common::scalar(&pool, "SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND type <> 'program.created' AND type <> 'ticket.issued'", tenant),
        0
    );
    // A failure is counted like a redemption's.
    assert_eq!(
        f.store.validate(&attempt(&program, "nope", None)).unwrap(),
        Err(RedemptionFailure::TicketNotFound)
    );
    assert_eq!(common::events(&pool, tenant, "ticket.redemption_failed"), 1);
}

#[test]
fn a_wrong_email_at_validation_counts_towards_the_lock() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "code", |t| {
        t.email = Some(common::email("a@example.com"))
    });
    for _ in 0..5 {
        assert_eq!(
            f.store
                .validate(&attempt(&program, "code", Some("b@example.com")))
                .unwrap(),
            Err(RedemptionFailure::EmailMismatch)
        );
    }
    let view = TicketStore::get(&f.store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.state, TicketState::Locked);
}

#[test]
fn a_rollback_gives_the_use_back_exactly_once() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let tenant = &program.tenant_id;
    let grant = f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    let key = ApiKeyId::generate();
    let reason = RollbackReason::try_from("refund".to_owned()).unwrap();
    let back = f
        .store
        .rollback(tenant, &grant.redemption_id, &key, Some(reason), now())
        .unwrap()
        .unwrap();
    assert_eq!((back.ticket_id, back.remaining), (id.clone(), 3));
    assert_eq!(
        f.store
            .rollback(tenant, &grant.redemption_id, &key, None, now())
            .unwrap(),
        Err(RollbackRefusal::AlreadyRolledBack)
    );
    assert_eq!(
        f.store
            .rollback(tenant, &RedemptionId::generate(), &key, None, now())
            .unwrap(),
        Err(RollbackRefusal::NotFound)
    );
    assert_eq!(redemptions(&f.store, &program, &id), 0);
    let pool = f.db.pool();
    let recorded = common::scalar(
        &pool,
        &format!(
            "SELECT count(*) AS n FROM events WHERE tenant_id = $1 \
             AND type = 'ticket.redemption_rolled_back' AND data->>'reason' = 'refund' \
             AND data->>'by' = '{key}' AND data->>'redemptionId' = '{}'",
            grant.redemption_id
        ),
        tenant,
    );
    assert_eq!(recorded, 1);
}

#[test]
fn a_program_without_rollback_refuses_it() {
    let f = fixture();
    let (program, id) = three_use_ticket(&f.store);
    let tenant = &program.tenant_id;
    let grant = f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    let mut conn = f.db.pool().get().unwrap();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE programs SET allow_rollback = false WHERE id = '{}'",
            program.id
        )),
        &mut conn,
    )
    .unwrap();
    assert_eq!(
        f.store
            .rollback(
                tenant,
                &grant.redemption_id,
                &ApiKeyId::generate(),
                None,
                now()
            )
            .unwrap(),
        Err(RollbackRefusal::NotAllowed)
    );
    assert_eq!(redemptions(&f.store, &program, &id), 1);
}

#[test]
fn rollbacks_raced_against_redemptions_of_an_exhausted_ticket_keep_counts_right() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(32));
    let (program, id) = three_use_ticket(&store);
    let grants: Vec<_> = (0..3)
        .map(|_| {
            store
                .redeem(&attempt(&program, "code", None))
                .unwrap()
                .unwrap()
        })
        .collect();
    let rollback_ids: Vec<RedemptionId> = grants.iter().map(|g| g.redemption_id.clone()).collect();
    let tried = attempt(&program, "code", None);
    let tenant = program.tenant_id.clone();
    // Each of the 3 redemptions is rolled back by 4 threads; 18 threads redeem.
    let results = race(&store, 30, move |store, i| {
        if i < 12 {
            let id = &rollback_ids[i % 3];
            (
                store
                    .rollback(&tenant, id, &ApiKeyId::generate(), None, now())
                    .unwrap()
                    .is_ok(),
                false,
            )
        } else {
            (false, store.redeem(&tried).unwrap().is_ok())
        }
    });
    let rolled = results.iter().filter(|r| r.0).count();
    let redeemed = results.iter().filter(|r| r.1).count();
    assert_eq!(rolled, 3);
    let count = redemptions(&store, &program, &id);
    assert_eq!(count as usize, 3 - rolled + redeemed);
    assert!(count <= 3, "never over the limit: {count}");
    let pool = f.db.pool();
    let live = common::scalar(
        &pool,
        "SELECT count(*) AS n FROM redemptions WHERE tenant_id = $1 AND rolled_back_at IS NULL",
        &program.tenant_id,
    );
    assert_eq!(live, i64::from(count));
}
