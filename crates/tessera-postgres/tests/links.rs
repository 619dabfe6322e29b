//! URL tickets against a real PostgreSQL: found by their link hash, redeemed
//! through the code path's conditional statement (at most n uses, also by link,
//! under concurrency), and `replace: true` revoking the subject's active ticket
//! in the issuing transaction.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier};

use common::{events, fixture, hash, limit, new_ticket, now, scalar, subject};
use tessera_app::links::LinkStore;
use tessera_app::model::RedemptionAttempt;
use tessera_app::ports::{RedemptionStore, StoreError, TicketStore};
use tessera_domain::{RedemptionFailure, TicketState};
use tessera_postgres::PgStore;

fn linked_ticket(
    program: &tessera_domain::Program,
    code: &str,
    link: &str,
    tweak: impl FnOnce(&mut tessera_domain::Ticket),
) -> tessera_app::model::NewTicket {
    let mut new = new_ticket(program, code, tweak);
    new.link_hash = Some(hash(link));
    new
}

/// What a link page's button does: resolve the link, then redeem its code hash.
fn redeem_by_link(
    store: &PgStore,
    tenant: &tessera_domain::TenantId,
    link: &str,
) -> Option<Result<tessera_app::model::Grant, RedemptionFailure>> {
    let linked = store
        .find_by_link(Some(tenant.clone()), hash(link))
        .unwrap()?;
    let attempt = RedemptionAttempt {
        tenant_id: linked.program.tenant_id.clone(),
        program_id: linked.program.id.clone(),
        code_hash: linked.code_hash,
        email: None,
        now: now(),
        redeemer: None,
        email_lock_seconds: 900,
        shared_failure: None,
    };
    Some(store.redeem(&attempt).unwrap())
}

#[test]
fn a_link_finds_its_ticket_program_and_code_hash_and_nothing_else() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_redemptions = limit(3));
    let new = linked_ticket(&program, "code-1", "link-1", |t| {
        t.email = Some(common::email("ann@example.com"))
    });
    f.store.issue(&new, now()).unwrap();
    f.store
        .issue(&new_ticket(&program, "code-2", |_| {}), now())
        .unwrap();

    let found = f
        .store
        .find_by_link(Some(tenant.clone()), hash("link-1"))
        .unwrap()
        .unwrap();
    assert_eq!(found.view.ticket, new.ticket);
    assert_eq!(found.view.remaining(), 3);
    assert_eq!(found.program.id, program.id);
    assert_eq!(found.code_hash, hash("code-1"));
    assert_eq!(
        f.store
            .find_by_link(Some(tenant.clone()), hash("link-2"))
            .unwrap(),
        None
    );
    assert_eq!(
        f.store
            .find_by_link(Some(tenant.clone()), hash("code-1"))
            .unwrap(),
        None
    );
    // Routed by tenant: another tenant, or the directory of older links, has no
    // such link.
    let other = common::tenant(&f.store);
    assert_eq!(
        f.store.find_by_link(Some(other), hash("link-1")).unwrap(),
        None
    );
    assert_eq!(f.store.find_by_link(None, hash("link-1")).unwrap(), None);
}

#[test]
fn finding_a_link_writes_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    f.store
        .issue(&linked_ticket(&program, "c", "l", |_| {}), now())
        .unwrap();
    let count_events = "SELECT count(*) AS n FROM events WHERE tenant_id = $1";
    let before = scalar(&f.db.pool(), count_events, &tenant);
    for _ in 0..3 {
        f.store
            .find_by_link(Some(tenant.clone()), hash("l"))
            .unwrap()
            .unwrap();
    }
    let found = f
        .store
        .find_by_link(Some(tenant.clone()), hash("l"))
        .unwrap()
        .unwrap();
    assert_eq!(found.view.ticket.redemptions, 0);
    assert_eq!(found.view.ticket.version, 1);
    assert_eq!(scalar(&f.db.pool(), count_events, &tenant), before);
}

#[test]
fn a_single_use_link_is_redeemed_once_by_32_threads() {
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(16));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_redemptions = limit(1));
    store
        .issue(&linked_ticket(&program, "code", "link", |_| {}), now())
        .unwrap();
    let barrier = Arc::new(Barrier::new(32));
    let results: Vec<_> = (0..32)
        .map(|_| {
            let (store, barrier, tenant) = (store.clone(), barrier.clone(), tenant.clone());
            std::thread::spawn(move || {
                barrier.wait();
                redeem_by_link(&store, &tenant, "link").unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| *r == Err(RedemptionFailure::TicketExhausted)));
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.redeemed"), 1);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.exhausted"), 1);
    assert_eq!(
        events(&f.db.pool(), &tenant, "ticket.redemption_failed"),
        31
    );
}

#[test]
fn replacing_revokes_the_subjects_active_ticket_in_the_same_transaction() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.one_active_per_subject = true);
    let first = linked_ticket(&program, "c1", "l1", |t| t.subject = Some(subject("ann")));
    f.store.issue(&first, now()).unwrap();
    let second = linked_ticket(&program, "c2", "l2", |t| t.subject = Some(subject("ann")));
    assert_eq!(
        f.store.issue(&second, now()),
        Err(StoreError::SubjectHasActiveTicket),
        "without replace the rule holds"
    );
    f.store.issue_replacing(&second, now()).unwrap();

    let old = TicketStore::get(&f.store, &tenant, &first.ticket.id).unwrap();
    assert_eq!(old.ticket.state, TicketState::Revoked);
    assert_eq!(old.ticket.version, 2);
    let new = TicketStore::get(&f.store, &tenant, &second.ticket.id).unwrap();
    assert_eq!(new.ticket.state, TicketState::Active);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 1);
    assert_eq!(
        scalar(
            &f.db.pool(),
            &format!(
                "SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND type = 'ticket.revoked' \
                 AND ticket_id = '{}' AND data->>'replacedBy' = '{}'",
                first.ticket.id.as_str(),
                second.ticket.id.as_str()
            ),
            &tenant
        ),
        1
    );
    assert_eq!(
        redeem_by_link(&f.store, &tenant, "l1"),
        Some(Err(RedemptionFailure::TicketRevoked))
    );
    assert!(matches!(
        redeem_by_link(&f.store, &tenant, "l2"),
        Some(Ok(_))
    ));
    // Another subject's ticket is left alone.
    let bob = new_ticket(&program, "c3", |t| t.subject = Some(subject("bob")));
    f.store.issue_replacing(&bob, now()).unwrap();
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 1);
}

#[test]
fn a_failed_replacement_revokes_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.one_active_per_subject = true;
        new.max_tickets = common::max_tickets(1);
    });
    let first = new_ticket(&program, "c1", |t| t.subject = Some(subject("ann")));
    f.store.issue(&first, now()).unwrap();
    let second = new_ticket(&program, "c2", |t| t.subject = Some(subject("ann")));
    assert_eq!(
        f.store.issue_replacing(&second, now()),
        Err(StoreError::MaxTicketsReached)
    );
    let old = TicketStore::get(&f.store, &tenant, &first.ticket.id).unwrap();
    assert_eq!(old.ticket.state, TicketState::Active);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 0);
}

#[test]
fn replacing_in_a_program_without_the_rule_is_a_plain_issue() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let first = new_ticket(&program, "c1", |t| t.subject = Some(subject("ann")));
    let second = new_ticket(&program, "c2", |t| t.subject = Some(subject("ann")));
    f.store.issue(&first, now()).unwrap();
    f.store.issue_replacing(&second, now()).unwrap();
    for id in [&first.ticket.id, &second.ticket.id] {
        let view = TicketStore::get(&f.store, &tenant, id).unwrap();
        assert_eq!(view.ticket.state, TicketState::Active);
    }
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 0);
}

#[test]
fn concurrent_replacements_for_one_subject_leave_exactly_one_active_ticket() {
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(16));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.one_active_per_subject = true);
    store
        .issue(
            &new_ticket(&program, "c-first", |t| t.subject = Some(subject("ann"))),
            now(),
        )
        .unwrap();
    let barrier = Arc::new(Barrier::new(20));
    let results: Vec<_> = (0..20)
        .map(|i| {
            let (store, barrier, program) = (store.clone(), barrier.clone(), program.clone());
            std::thread::spawn(move || {
                let new = new_ticket(&program, &format!("c-{i}"), |t| {
                    t.subject = Some(subject("ann"))
                });
                barrier.wait();
                store.issue_replacing(&new, now())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let active = "SELECT count(*) AS n FROM tickets WHERE tenant_id = $1 AND state = 'active'";
    assert_eq!(scalar(&f.db.pool(), active, &tenant), 1);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.revoked"), 20);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.issued"), 21);
}
