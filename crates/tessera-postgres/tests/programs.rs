mod common;

use common::{at, events, fixture, limit, max_tickets, now};
use tessera_app::ports::{ProgramStore, StoreError};
use tessera_domain::{PageRequest, ProgramChanges, ProgramId, ProgramState, UrlPrefix};

#[test]
fn a_program_round_trips_and_is_located_without_its_tenant() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.url_prefix = Some(UrlPrefix::try_from("https://t.example/r/".to_owned()).unwrap());
        new.one_active_per_subject = true;
        new.max_tickets = max_tickets(7);
    });
    assert_eq!(f.store.get(&tenant, &program.id).unwrap(), program);
    assert_eq!(f.store.locate(&program.id).unwrap(), Some(program.clone()));
    assert_eq!(f.store.locate(&ProgramId::generate()).unwrap(), None);
    assert_eq!(
        f.store.get(&tenant, &ProgramId::generate()),
        Err(StoreError::NotFound)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "program.created"), 1);
}

#[test]
fn programs_are_listed_oldest_first_with_count_offset_and_total() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(common::program(&f.store, &tenant, |_| {}).id);
    }
    // Same created_at everywhere: the id breaks the tie, deterministically.
    ids.sort();
    let page = f
        .store
        .list(&tenant, PageRequest::new(Some(2), Some(1)).unwrap())
        .unwrap();
    assert_eq!(page.total, 5);
    let listed: Vec<_> = page.items.into_iter().map(|p| p.id).collect();
    assert_eq!(listed, ids[1..3]);
    let beyond = f
        .store
        .list(&tenant, PageRequest::new(Some(10), Some(10)).unwrap())
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 5);
}

#[test]
fn update_writes_iff_the_version_matches() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let changes = ProgramChanges {
        max_redemptions: Some(limit(3)),
        end_time: Some(at(2000)),
        name: Some(None),
        ..ProgramChanges::default()
    };
    let updated = program.apply(changes, at(5)).unwrap();
    let stored = f
        .store
        .update(&updated, tessera_domain::EventType::ProgramUpdated)
        .unwrap();
    assert_eq!(stored, updated);
    assert_eq!(stored.version, 2);
    assert_eq!(f.store.get(&tenant, &program.id).unwrap(), updated);

    // The same change again is based on version 1: stale.
    assert_eq!(
        f.store
            .update(&updated, tessera_domain::EventType::ProgramUpdated),
        Err(StoreError::VersionConflict)
    );
    let suspended = stored.suspended(at(6));
    let stored = f
        .store
        .update(&suspended, tessera_domain::EventType::ProgramSuspended)
        .unwrap();
    assert_eq!(stored.state, ProgramState::Suspended);

    let mut missing = suspended.clone();
    missing.id = ProgramId::generate();
    assert_eq!(
        f.store
            .update(&missing, tessera_domain::EventType::ProgramUpdated),
        Err(StoreError::NotFound)
    );
    let pool = f.db.pool();
    assert_eq!(events(&pool, &tenant, "program.updated"), 1);
    assert_eq!(events(&pool, &tenant, "program.suspended"), 1);
}

#[test]
fn update_returns_the_stores_issued_count() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "c1", |_| {});
    let stored = f
        .store
        .update(
            &program.suspended(at(1)),
            tessera_domain::EventType::ProgramSuspended,
        )
        .unwrap();
    assert_eq!(stored.issued_tickets, 1);
}

#[test]
fn delete_removes_the_program_and_its_tickets_and_is_recorded() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let ticket = common::issue(&f.store, &program, "c1", |_| {});
    f.store.delete(&tenant, &program.id, now()).unwrap();
    assert_eq!(f.store.get(&tenant, &program.id), Err(StoreError::NotFound));
    assert_eq!(f.store.locate(&program.id).unwrap(), None);
    assert_eq!(
        tessera_app::ports::TicketStore::get(&f.store, &tenant, &ticket),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.delete(&tenant, &program.id, now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "program.deleted"), 1);
}
