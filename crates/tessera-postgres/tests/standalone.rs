#![allow(clippy::unwrap_used)] // fixture helpers unwrap as the tests do

mod common;

use common::{at, fixture, hash, now};
use tessera_app::model::{StandaloneDeletion, StandaloneUse, UsesLeft};
use tessera_app::ports::{StandaloneStore, StoreError};
use tessera_domain::{Label, PageRequest, StandaloneTicket, StandaloneTicketId, TenantId, Uses};

pub fn standalone(tenant: &TenantId, uses: i64, expires_in: Option<i64>) -> StandaloneTicket {
    let uses = Uses::try_from(uses).unwrap();
    StandaloneTicket {
        id: StandaloneTicketId::generate(),
        tenant_id: tenant.clone(),
        name: Some(Label::try_from("reg".to_owned()).unwrap()),
        permissions: Some(common::payload(r#"{"read":true}"#)),
        payload: Some(common::payload(r#"{"k":1}"#)),
        total_uses: uses,
        uses_left: uses.limit(),
        expires_at: expires_in.map(|seconds| now() + chrono::Duration::seconds(seconds)),
        created_at: now(),
    }
}

#[test]
fn a_ticket_is_used_until_its_uses_run_out_then_gone() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    f.store
        .create(&standalone(&tenant, 2, Some(60)), hash("t"), 10, now())
        .unwrap();
    let first = f
        .store
        .use_ticket(&tenant, hash("t"), now())
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        StandaloneUse {
            uses_left: UsesLeft::Left(1),
            payload: Some(common::payload(r#"{"k":1}"#)),
        }
    );
    let last = f
        .store
        .use_ticket(&tenant, hash("t"), now())
        .unwrap()
        .unwrap();
    assert_eq!(last.uses_left, UsesLeft::Left(0));
    assert_eq!(f.store.use_ticket(&tenant, hash("t"), now()).unwrap(), None);
    assert_eq!(
        f.store
            .list(&tenant, PageRequest::default(), now())
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        live_counter(&f, &tenant),
        0,
        "the used-up ticket freed its place"
    );
}

fn live_counter(f: &common::Fixture, tenant: &TenantId) -> i64 {
    common::scalar(
        &f.db.pool(),
        "SELECT live_standalone AS n FROM tenant_counters WHERE tenant_id = $1",
        tenant,
    )
}

#[test]
fn unlimited_tickets_stay_unlimited_and_expired_ones_are_unusable() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    f.store
        .create(&standalone(&tenant, 0, None), hash("forever"), 10, now())
        .unwrap();
    for _ in 0..3 {
        let used = f
            .store
            .use_ticket(&tenant, hash("forever"), now())
            .unwrap()
            .unwrap();
        assert_eq!(used.uses_left, UsesLeft::Unlimited);
    }
    f.store
        .create(&standalone(&tenant, 5, Some(30)), hash("brief"), 10, now())
        .unwrap();
    assert_eq!(
        f.store.use_ticket(&tenant, hash("brief"), at(40)).unwrap(),
        None
    );
    assert_eq!(
        f.store.use_ticket(&tenant, hash("missing"), now()).unwrap(),
        None
    );
}

#[test]
fn delete_reports_uses_left_and_frees_the_place() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    f.store
        .create(&standalone(&tenant, 3, Some(60)), hash("a"), 10, now())
        .unwrap();
    f.store
        .create(&standalone(&tenant, 0, None), hash("b"), 10, now())
        .unwrap();
    f.store
        .create(&standalone(&tenant, 1, Some(5)), hash("c"), 10, now())
        .unwrap();
    assert_eq!(
        f.store.delete(&tenant, hash("a"), now()).unwrap(),
        StandaloneDeletion::Deleted(UsesLeft::Left(3))
    );
    assert_eq!(
        f.store.delete(&tenant, hash("a"), now()).unwrap(),
        StandaloneDeletion::NothingLive
    );
    assert_eq!(
        f.store.delete(&tenant, hash("b"), now()).unwrap(),
        StandaloneDeletion::Deleted(UsesLeft::Unlimited)
    );
    // An expired ticket is not live: reported absent, but its place is freed.
    assert_eq!(
        f.store.delete(&tenant, hash("c"), at(100)).unwrap(),
        StandaloneDeletion::NothingLive
    );
    assert_eq!(live_counter(&f, &tenant), 0);
}

#[test]
fn live_tickets_are_listed_oldest_first_without_expired_ones() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut ticket = standalone(&tenant, 1, Some(if i == 3 { 1 } else { 600 }));
        ticket.created_at = at(i);
        f.store
            .create(&ticket, hash(&format!("t{i}")), 10, now())
            .unwrap();
        ids.push(ticket);
    }
    let page = f
        .store
        .list(&tenant, PageRequest::new(Some(2), Some(1)).unwrap(), at(20))
        .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.items, ids[1..3]);
}

#[test]
fn the_cap_is_enforced_and_expired_tickets_are_purged_to_make_room() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    f.store
        .create(&standalone(&tenant, 1, Some(5)), hash("short"), 2, now())
        .unwrap();
    f.store
        .create(&standalone(&tenant, 1, None), hash("long"), 2, now())
        .unwrap();
    assert_eq!(
        f.store
            .create(&standalone(&tenant, 1, None), hash("x"), 2, now()),
        Err(StoreError::MaxTicketsReached)
    );
    // Once "short" has expired, its place is reclaimed.
    f.store
        .create(&standalone(&tenant, 1, None), hash("x"), 2, at(100))
        .unwrap();
    assert_eq!(
        f.store
            .create(&standalone(&tenant, 1, None), hash("y"), 2, at(100)),
        Err(StoreError::MaxTicketsReached)
    );
    assert_eq!(live_counter(&f, &tenant), 2);
}

#[test]
fn a_duplicate_token_hash_is_a_duplicate_secret_and_takes_no_place() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    f.store
        .create(&standalone(&tenant, 1, None), hash("dup"), 10, now())
        .unwrap();
    assert_eq!(
        f.store
            .create(&standalone(&tenant, 1, None), hash("dup"), 10, now()),
        Err(StoreError::DuplicateSecret)
    );
    assert_eq!(live_counter(&f, &tenant), 1);
}
