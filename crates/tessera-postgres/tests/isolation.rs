//! Invariant 4: another tenant's ids answer exactly like ids that never existed.
#![allow(clippy::unwrap_used)]
mod common;

use common::{attempt, fixture, hash, now};
use tessera_app::model::RedemptionAttempt;
use tessera_app::ports::{ProgramStore, RedemptionStore, StandaloneStore, StoreError, TicketStore};
use tessera_domain::{PageRequest, RedemptionFailure, TicketState};

#[test]
fn every_method_scopes_by_tenant() {
    let f = fixture();
    let owner = common::tenant(&f.store);
    let intruder = common::tenant(&f.store);
    let program = common::program(&f.store, &owner, |_| {});
    let ticket = common::issue(&f.store, &program, "code", |_| {});
    f.store
        .create(&standalone_of(&owner), hash("token"), 10, now())
        .unwrap();

    assert_eq!(
        ProgramStore::get(&f.store, &intruder, &program.id),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        ProgramStore::list(&f.store, &intruder, PageRequest::default())
            .unwrap()
            .total,
        0
    );
    let mut hijacked = program.suspended(now());
    hijacked.tenant_id = intruder.clone();
    assert_eq!(
        f.store
            .update(&hijacked, tessera_domain::EventType::ProgramSuspended),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        ProgramStore::delete(&f.store, &intruder, &program.id, now()),
        Err(StoreError::NotFound)
    );

    let mut foreign = common::new_ticket(&program, "other", |_| {});
    foreign.ticket.tenant_id = intruder.clone();
    assert_eq!(f.store.issue(&foreign, now()), Err(StoreError::NotFound));
    assert_eq!(
        TicketStore::get(&f.store, &intruder, &ticket),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        TicketStore::list(&f.store, &intruder, &program.id, PageRequest::default())
            .map(|page| page.total),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .set_state(&intruder, &ticket, TicketState::Disabled, 1, now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.revoke(&intruder, &ticket, now()),
        Err(StoreError::NotFound)
    );

    let as_intruder = RedemptionAttempt {
        tenant_id: intruder.clone(),
        ..attempt(&program, "code", None)
    };
    assert_eq!(
        f.store.redeem(&as_intruder).unwrap(),
        Err(RedemptionFailure::TicketNotFound)
    );

    assert_eq!(
        f.store.use_ticket(&intruder, hash("token"), now()).unwrap(),
        None
    );
    assert_eq!(
        StandaloneStore::delete(&f.store, &intruder, hash("token"), now()).unwrap(),
        tessera_app::model::StandaloneDeletion::NothingLive
    );
    assert_eq!(
        StandaloneStore::list(&f.store, &intruder, PageRequest::default(), now())
            .unwrap()
            .total,
        0
    );

    // The owner's data is untouched by all of the above.
    let view = TicketStore::get(&f.store, &owner, &ticket).unwrap();
    assert_eq!(
        (view.ticket.state, view.ticket.redemptions),
        (TicketState::Active, 0)
    );
    assert!(f
        .store
        .use_ticket(&owner, hash("token"), now())
        .unwrap()
        .is_some());
    assert!(f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .is_ok());
}

fn standalone_of(tenant: &tessera_domain::TenantId) -> tessera_domain::StandaloneTicket {
    tessera_domain::StandaloneTicket {
        id: tessera_domain::StandaloneTicketId::generate(),
        tenant_id: tenant.clone(),
        name: None,
        permissions: None,
        payload: None,
        total_uses: tessera_domain::Uses::try_from(0).unwrap(),
        uses_left: None,
        expires_at: None,
        created_at: now(),
    }
}
