mod common;

use common::{at, attempt, events, fixture, hash, limit, max_tickets, new_ticket, now, subject};
use tessera_app::model::TicketChanges;
use tessera_app::ports::{LifecycleStore, ProgramStore, StoreError, TicketStore};
use tessera_domain::{HoldId, PageRequest, ProgramId, TicketId, TicketState};

#[test]
fn an_issued_ticket_round_trips_with_its_program_limit() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_redemptions = limit(4));
    let new = new_ticket(&program, "code", |t| {
        t.email = Some(common::email("Ann@Example.com"));
        t.subject = Some(subject("user-1"));
        t.max_redemptions = Some(limit(9));
        t.payload = Some(common::payload(r#"{"seat": "A1", "n": [1, 2]}"#));
    });
    f.store.issue(&new, now()).unwrap();
    let view = TicketStore::get(&f.store, &tenant, &new.ticket.id).unwrap();
    assert_eq!(view.ticket, new.ticket);
    assert_eq!(view.program_limit, limit(4));
    assert_eq!(view.remaining(), 4, "min(ticket 9, program 4)");
    assert_eq!(
        TicketStore::get(&f.store, &tenant, &TicketId::generate()),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        ProgramStore::get(&f.store, &tenant, &program.id)
            .unwrap()
            .issued_tickets,
        1
    );
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.issued"), 1);
}

#[test]
fn issuing_from_a_missing_suspended_or_ended_program_is_refused() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let mut elsewhere = new_ticket(&program, "x", |_| {});
    elsewhere.ticket.program_id = ProgramId::generate();
    assert_eq!(f.store.issue(&elsewhere, now()), Err(StoreError::NotFound));
    assert_eq!(
        f.store
            .issue(&new_ticket(&program, "late", |_| {}), at(1000)),
        Err(StoreError::ProgramNotActive)
    );
    // Not started yet is fine: codes may go out before the event.
    f.store
        .issue(&new_ticket(&program, "early", |_| {}), at(-20))
        .unwrap();
    f.store
        .update(
            &program.suspended(at(1)),
            tessera_domain::EventType::ProgramSuspended,
        )
        .unwrap();
    assert_eq!(
        f.store.issue(&new_ticket(&program, "s", |_| {}), now()),
        Err(StoreError::ProgramNotActive)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.issued"), 1);
}

#[test]
fn max_tickets_is_enforced_and_refusals_change_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_tickets = max_tickets(2));
    common::issue(&f.store, &program, "a", |_| {});
    common::issue(&f.store, &program, "b", |_| {});
    assert_eq!(
        f.store.issue(&new_ticket(&program, "c", |_| {}), now()),
        Err(StoreError::MaxTicketsReached)
    );
    let stored = ProgramStore::get(&f.store, &tenant, &program.id).unwrap();
    assert_eq!(stored.issued_tickets, 2);
}

#[test]
fn a_duplicate_code_is_code_taken_a_duplicate_link_a_duplicate_secret_and_neither_raises_the_counter(
) {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let mut first = new_ticket(&program, "same", |_| {});
    first.link_hash = Some(hash("link"));
    f.store.issue(&first, now()).unwrap();
    assert_eq!(
        f.store.issue(&new_ticket(&program, "same", |_| {}), now()),
        Err(StoreError::CodeTaken)
    );
    let mut same_link = new_ticket(&program, "other", |_| {});
    same_link.link_hash = Some(hash("link"));
    assert_eq!(
        f.store.issue(&same_link, now()),
        Err(StoreError::DuplicateSecret)
    );
    let stored = ProgramStore::get(&f.store, &tenant, &program.id).unwrap();
    assert_eq!(stored.issued_tickets, 1);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.issued"), 1);

    // Codes are unique per tenant only: another tenant may hold the same hash.
    let other = common::tenant(&f.store);
    let theirs = common::program(&f.store, &other, |_| {});
    common::issue(&f.store, &theirs, "same", |_| {});
}

#[test]
fn one_active_ticket_per_subject_when_the_program_says_so() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let exclusive = common::program(&f.store, &tenant, |new| new.one_active_per_subject = true);
    let first = common::issue(&f.store, &exclusive, "a", |t| {
        t.subject = Some(subject("ann"))
    });
    assert_eq!(
        f.store.issue(
            &new_ticket(&exclusive, "b", |t| t.subject = Some(subject("ann"))),
            now()
        ),
        Err(StoreError::SubjectHasActiveTicket)
    );
    assert_eq!(
        ProgramStore::get(&f.store, &tenant, &exclusive.id)
            .unwrap()
            .issued_tickets,
        1
    );
    // Other subjects, and tickets without a subject, are unaffected.
    common::issue(&f.store, &exclusive, "c", |t| {
        t.subject = Some(subject("bob"))
    });
    common::issue(&f.store, &exclusive, "d", |_| {});
    common::issue(&f.store, &exclusive, "e", |_| {});
    // Once revoked, the subject may get a new ticket; re-activating the old one
    // would then make two.
    f.store.revoke(&tenant, &first, now()).unwrap();
    let second = common::issue(&f.store, &exclusive, "f", |t| {
        t.subject = Some(subject("ann"))
    });
    f.store
        .set_state(&tenant, &second, TicketState::Disabled, 1, now())
        .unwrap();
    let third = common::issue(&f.store, &exclusive, "g", |t| {
        t.subject = Some(subject("ann"))
    });
    assert_eq!(
        f.store
            .set_state(&tenant, &second, TicketState::Active, 2, now()),
        Err(StoreError::SubjectHasActiveTicket)
    );
    f.store.revoke(&tenant, &third, now()).unwrap();
    f.store
        .set_state(&tenant, &second, TicketState::Active, 2, now())
        .unwrap();

    // A program without the rule lets a subject hold many active tickets.
    let open = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &open, "h", |t| t.subject = Some(subject("ann")));
    common::issue(&f.store, &open, "i", |t| t.subject = Some(subject("ann")));
}

#[test]
fn tickets_are_listed_oldest_first_with_total() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let other = common::program(&f.store, &tenant, |_| {});
    let mut ids = Vec::new();
    for (i, code) in ["a", "b", "c", "d"].iter().enumerate() {
        ids.push(common::issue(&f.store, &program, code, |t| {
            t.created_at = at(i64::try_from(i).unwrap());
        }));
    }
    common::issue(&f.store, &other, "z", |_| {});
    let page = TicketStore::list(
        &f.store,
        &tenant,
        &program.id,
        PageRequest::new(Some(2), Some(1)).unwrap(),
    )
    .unwrap();
    assert_eq!(page.total, 4);
    let listed: Vec<_> = page.items.iter().map(|v| v.ticket.id.clone()).collect();
    assert_eq!(listed, ids[1..3]);
    assert_eq!(page.items[0].program_limit, program.max_redemptions);
    assert_eq!(
        TicketStore::list(
            &f.store,
            &tenant,
            &ProgramId::generate(),
            PageRequest::default()
        )
        .map(|page| page.total),
        Err(StoreError::NotFound)
    );
}

#[test]
fn set_state_is_optimistically_locked_and_activation_clears_failures() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "a", |t| t.failed_attempts = 3);
    let disabled = f
        .store
        .set_state(&tenant, &id, TicketState::Disabled, 1, now())
        .unwrap();
    assert_eq!(disabled.ticket.state, TicketState::Disabled);
    assert_eq!(disabled.ticket.version, 2);
    assert_eq!(disabled.ticket.failed_attempts, 3);
    assert_eq!(
        f.store
            .set_state(&tenant, &id, TicketState::Active, 1, now()),
        Err(StoreError::VersionConflict)
    );
    let active = f
        .store
        .set_state(&tenant, &id, TicketState::Active, 2, now())
        .unwrap();
    assert_eq!(active.ticket.failed_attempts, 0);
    assert_eq!(active.ticket.version, 3);
    assert_eq!(
        f.store.set_state(
            &tenant,
            &TicketId::generate(),
            TicketState::Active,
            1,
            now()
        ),
        Err(StoreError::NotFound)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.updated"), 2);
}

#[test]
fn revoking_is_idempotent_and_recorded_once() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "a", |_| {});
    f.store.revoke(&tenant, &id, now()).unwrap();
    f.store.revoke(&tenant, &id, now()).unwrap();
    assert_eq!(
        TicketStore::get(&f.store, &tenant, &id)
            .unwrap()
            .ticket
            .state,
        TicketState::Revoked
    );
    assert_eq!(
        f.store.revoke(&tenant, &TicketId::generate(), now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 1);
}

/// The view an update returns counts the holds live at the request's instant (a
/// bound value: Citus refuses `now()` in RETURNING), not at the database's clock.
#[test]
fn an_updated_ticket_s_view_counts_holds_live_at_the_request_s_instant() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(5))
    });
    for expires in [at(20), at(40)] {
        f.store
            .hold(
                &attempt(&program, "code", None),
                &HoldId::generate(),
                expires,
            )
            .unwrap()
            .unwrap();
    }
    let both_live = f
        .store
        .set_state(&tenant, &id, TicketState::Disabled, 1, at(15))
        .unwrap();
    assert_eq!(both_live.held, 2);
    let one_live = f
        .store
        .update_ticket(
            &tenant,
            &id,
            TicketChanges {
                state: None,
                max_redemptions: Some(limit(6)),
            },
            2,
            at(30),
        )
        .unwrap();
    assert_eq!(
        one_live.held, 1,
        "the hold ending at 20 s has expired by 30 s"
    );
    let none_live = f
        .store
        .set_state(&tenant, &id, TicketState::Active, 3, at(50))
        .unwrap();
    assert_eq!(none_live.held, 0);
}
