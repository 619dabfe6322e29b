//! The queued path (`RedemptionStore::redeem_later`): the executors answer a
//! future instead of a waiting thread, with the same guarantees — invariant 1
//! inside a batch, and nothing acknowledged that did not commit.

use tessera_app::model::Grant;
use tessera_app::ports::{Later, RedemptionStore, StoreError};
use tessera_domain::RedemptionFailure;

use super::common::{self, attempt, block_on, limit};
use super::{
    count, grouped, kill_the_batch_of_two_on_its_lock, redemptions_of, wait_until, Blocker,
};

fn later(
    store: &tessera_postgres::PgStore,
    a: &tessera_app::model::RedemptionAttempt,
) -> Later<Option<Grant>> {
    store
        .redeem_later(a, None)
        .expect("a store with a group commit queues")
}

#[test]
fn sixty_four_queued_redemptions_of_a_one_use_ticket_give_exactly_one_success() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let id = common::issue(&g.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let blocker = Blocker::ticket(&g.f, &tenant, &id);
    // All 64 queued from this one thread: no thread waits for any of them.
    let attempt = attempt(&program, "code", None);
    let pending: Vec<_> = (0..64).map(|_| later(&g.store, &attempt)).collect();
    wait_until("one batch runs and the rest is queued", || {
        let sizes = g.sizes();
        sizes.len() == 1 && sizes[0] + g.group.queued() == 64
    });
    blocker.release();
    let answers: Vec<_> = pending.into_iter().map(block_on).collect();
    let granted = answers.iter().filter(|a| matches!(a, Ok(Some(_)))).count();
    let refused = answers.iter().filter(|a| matches!(a, Ok(None))).count();
    assert_eq!((granted, refused), (1, 63), "{answers:?}");
    assert_eq!(redemptions_of(&g, &tenant, &id), 1);
    // A refusal is finished by the blocking path: classified and recorded once.
    assert_eq!(
        g.store.classify_refused(&attempt).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    let pool = g.f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 1);
    assert_eq!(
        common::events(&pool, &tenant, "ticket.redemption_failed"),
        1
    );
    assert_eq!(g.sizes().iter().sum::<usize>(), 64);
}

#[test]
fn a_queued_batch_whose_connection_is_killed_acknowledges_nothing() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let first = common::issue(&g.store, &program, "first", |_| {});
    let locked = common::issue(&g.store, &program, "locked", |_| {});
    let other = common::issue(&g.store, &program, "other", |_| {});
    let first_blocker = Blocker::ticket(&g.f, &tenant, &first);
    let second_blocker = Blocker::ticket(&g.f, &tenant, &locked);
    let blocked = later(&g.store, &attempt(&program, "first", None));
    wait_until("the executor took the blocked batch", || {
        g.sizes().len() == 1 && g.group.queued() == 0
    });
    let queued = [
        later(&g.store, &attempt(&program, "locked", None)),
        later(&g.store, &attempt(&program, "other", None)),
    ];
    wait_until("both are queued", || g.group.queued() == 2);
    first_blocker.release();
    assert!(matches!(block_on(blocked), Ok(Some(_))));
    kill_the_batch_of_two_on_its_lock(&g);
    for answer in queued.map(block_on) {
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{answer:?}"
        );
    }
    second_blocker.release();
    assert_eq!(redemptions_of(&g, &tenant, &locked), 0);
    assert_eq!(redemptions_of(&g, &tenant, &other), 0);
}

#[test]
fn the_queued_probe_matches_nothing_and_leaves_nothing_a_tenant_sees() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    common::issue(&g.store, &program, "code", |_| {});
    let probe = g
        .store
        .probe_later(&program.id, common::now())
        .expect("a store with a group commit queues");
    block_on(probe).unwrap();
    g.store
        .probe_refused(&program.id, common::now(), None)
        .unwrap();
    let pool = g.f.db.pool();
    assert_eq!(
        common::events(&pool, &tenant, "ticket.redemption_failed"),
        0
    );
    assert_eq!(count(&g, "SELECT count(*) AS n FROM redemptions"), 0);
    assert_eq!(g.sizes(), vec![1], "the probe went through the queue");
}

#[test]
fn a_store_without_a_group_commit_has_no_queue() {
    let f = common::fixture();
    let store = tessera_postgres::PgStore::new(f.db.pool());
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |_| {});
    assert!(store
        .redeem_later(&attempt(&program, "code", None), None)
        .is_none());
    assert!(store.probe_later(&program.id, common::now()).is_none());
    assert!(tessera_app::ports::StandaloneStore::use_ticket_later(
        &store,
        &tenant,
        common::hash("token"),
        common::now(),
        tessera_domain::ApiKeyId::generate()
    )
    .is_none());
}

#[test]
fn sixty_four_queued_uses_of_a_one_use_standalone_ticket_give_exactly_one_success() {
    use tessera_app::ports::StandaloneStore;
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let blocker_ticket = super::standalone(&tenant, 5);
    g.store
        .create(&blocker_ticket, common::hash("blocker"), 100, common::now())
        .unwrap();
    g.store
        .create(
            &super::standalone(&tenant, 1),
            common::hash("once"),
            100,
            common::now(),
        )
        .unwrap();
    let blocker = Blocker::standalone(&g.f, &tenant, &blocker_ticket.id);
    let key = admin_key_id(&g.store, &tenant);
    let use_later = |token: &str| {
        g.store
            .use_ticket_later(&tenant, common::hash(token), common::now(), key.clone())
            .expect("a store with a group commit queues")
    };
    let blocked = use_later("blocker");
    wait_until("the executor took the blocked batch", || {
        g.sizes().len() == 1 && g.group.queued() == 0
    });
    // All 64 queued from this one thread: no thread waits for any of them.
    let pending: Vec<_> = (0..64).map(|_| use_later("once")).collect();
    wait_until("every use is queued", || g.group.queued() == 64);
    blocker.release();
    assert!(matches!(block_on(blocked), Ok(Some(_))));
    let answers: Vec<_> = pending.into_iter().map(block_on).collect();
    let used = answers.iter().filter(|a| matches!(a, Ok(Some(_)))).count();
    let refused = answers.iter().filter(|a| matches!(a, Ok(None))).count();
    assert_eq!((used, refused), (1, 63), "{answers:?}");
    // Used up: deleted, its place in the tenant's count given back once.
    assert_eq!(count(&g, "SELECT count(*) AS n FROM standalone_tickets"), 1);
    assert_eq!(
        count(&g, "SELECT live_standalone AS n FROM tenant_counters"),
        1
    );
    assert_eq!(g.sizes().iter().sum::<usize>(), 65);
}

fn admin_key_id(
    store: &tessera_postgres::PgStore,
    tenant: &tessera_domain::TenantId,
) -> tessera_domain::ApiKeyId {
    use tessera_app::ports::AccessStore;
    store.list_api_keys(tenant).unwrap().remove(0).id
}

#[test]
fn a_queued_member_whose_key_was_deleted_spends_nothing() {
    use tessera_app::model::CallerKey;
    use tessera_app::ports::{AccessStore, StandaloneStore};
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let id = common::issue(&g.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(5))
    });
    g.store
        .create(
            &super::standalone(&tenant, 5),
            common::hash("ticket"),
            100,
            common::now(),
        )
        .unwrap();
    let key_id = admin_key_id(&g.store, &tenant);
    let caller_key = CallerKey {
        tenant_id: tenant.clone(),
        key_id: key_id.clone(),
    };
    let attempt = attempt(&program, "code", None);
    let redeem =
        |key: Option<CallerKey>| block_on(g.store.redeem_later(&attempt, key).unwrap()).unwrap();
    let use_once = || {
        let used = g
            .store
            .use_ticket_later(
                &tenant,
                common::hash("ticket"),
                common::now(),
                key_id.clone(),
            )
            .unwrap();
        block_on(used).unwrap()
    };
    // While the key exists, its members spend their uses.
    assert!(redeem(Some(caller_key.clone())).is_some());
    assert!(use_once().is_some());
    g.store.delete_api_key(&tenant, &key_id).unwrap();
    // Once it is deleted, the statement refuses them and writes nothing...
    assert_eq!(redeem(Some(caller_key.clone())), None);
    assert_eq!(use_once(), None);
    assert_eq!(redemptions_of(&g, &tenant, &id), 1);
    let pool = g.f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 1);
    assert_eq!(
        count(&g, "SELECT uses_left AS n FROM standalone_tickets"),
        4,
        "one use spent, by the key while it existed"
    );
    // ...and a key of another tenant with the same id is no key of this one.
    let other = common::tenant(&g.store);
    let foreign = CallerKey {
        tenant_id: other.clone(),
        key_id: admin_key_id(&g.store, &other),
    };
    assert!(
        redeem(Some(foreign)).is_some(),
        "a valid key of any tenant may redeem"
    );
    let mismatched = CallerKey {
        tenant_id: tenant.clone(),
        key_id: admin_key_id(&g.store, &other),
    };
    assert_eq!(redeem(Some(mismatched)), None);
    // Anonymous members are not checked against any key.
    assert!(redeem(None).is_some());
    assert_eq!(redemptions_of(&g, &tenant, &id), 3);
}
