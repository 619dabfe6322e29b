//! Imports: one transaction for every chunk, all or nothing against codes already
//! in the tenant and `maxTickets`, and two racing imports sharing a code: exactly
//! one commits, whole.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier};

use common::{fixture, max_tickets, new_ticket, now};
use tessera_app::model::{ImportOutcome, ImportStep, NewTicket};
use tessera_app::ports::{ProgramStore, StoreError, TicketStore};
use tessera_domain::{PageRequest, Program, TenantId};
use tessera_postgres::PgStore;

/// Chunks of `(line, ticket)` for `codes` (line = index + 2, after the header).
fn chunks(program: &Program, codes: &[String], size: usize) -> Vec<Vec<(u64, NewTicket)>> {
    let rows: Vec<(u64, NewTicket)> = codes
        .iter()
        .enumerate()
        .map(|(i, code)| (i as u64 + 2, new_ticket(program, code, |_| {})))
        .collect();
    rows.chunks(size).map(<[_]>::to_vec).collect()
}

fn import(
    store: &PgStore,
    program: &Program,
    chunks: Vec<Vec<(u64, NewTicket)>>,
    finish: ImportStep,
) -> Result<ImportOutcome, StoreError> {
    let mut steps = chunks.into_iter().map(ImportStep::Chunk);
    let mut next = move || steps.next().unwrap_or_else(|| finish.clone());
    store.import(&program.tenant_id, &program.id, now(), &mut next)
}

fn count(store: &PgStore, tenant: &TenantId, program: &Program) -> u64 {
    TicketStore::list(store, tenant, &program.id, PageRequest::default())
        .unwrap()
        .total
}

fn codes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn an_import_commits_every_chunk_with_one_event_and_the_counter() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let outcome = import(
        &f.store,
        &program,
        chunks(&program, &codes("a", 25), 10),
        ImportStep::Done,
    );
    assert_eq!(outcome, Ok(ImportOutcome::Imported(25)));
    assert_eq!(count(&f.store, &tenant, &program), 25);
    assert_eq!(
        ProgramStore::get(&f.store, &tenant, &program.id)
            .unwrap()
            .issued_tickets,
        25
    );
    assert_eq!(
        common::events(&f.db.pool(), &tenant, "ticket.batch_imported"),
        1
    );
}

#[test]
fn a_code_already_in_the_tenant_rolls_back_everything_and_names_its_line() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "a-17", |_| {});
    let outcome = import(
        &f.store,
        &program,
        chunks(&program, &codes("a", 30), 10),
        ImportStep::Done,
    );
    // "a-17" is the 18th row: line 19.
    assert_eq!(outcome, Ok(ImportOutcome::RolledBack { taken: vec![19] }));
    assert_eq!(count(&f.store, &tenant, &program), 1);
    assert_eq!(
        ProgramStore::get(&f.store, &tenant, &program.id)
            .unwrap()
            .issued_tickets,
        1
    );
    assert_eq!(
        common::events(&f.db.pool(), &tenant, "ticket.batch_imported"),
        0
    );
}

#[test]
fn an_aborted_import_writes_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let outcome = import(
        &f.store,
        &program,
        chunks(&program, &codes("b", 20), 10),
        ImportStep::Abort,
    );
    assert_eq!(outcome, Ok(ImportOutcome::RolledBack { taken: vec![] }));
    assert_eq!(count(&f.store, &tenant, &program), 0);
}

#[test]
fn an_import_over_max_tickets_is_refused_whole() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.max_tickets = max_tickets(10);
        new.ticket_length = tessera_domain::TicketLength::try_from(8).unwrap();
    });
    common::issue(&f.store, &program, "first", |_| {});
    let outcome = import(
        &f.store,
        &program,
        chunks(&program, &codes("c", 10), 4),
        ImportStep::Done,
    );
    assert_eq!(outcome, Err(StoreError::MaxTicketsReached));
    assert_eq!(count(&f.store, &tenant, &program), 1);
    let fits = import(
        &f.store,
        &program,
        chunks(&program, &codes("c", 9), 4),
        ImportStep::Done,
    );
    assert_eq!(fits, Ok(ImportOutcome::Imported(9)));
}

#[test]
fn two_racing_imports_sharing_a_code_end_with_exactly_one_committed_whole() {
    for round in 0..5 {
        let f = fixture();
        let tenant = common::tenant(&f.store);
        let program = common::program(&f.store, &tenant, |_| {});
        let mut left = codes(&format!("left{round}"), 3000);
        let mut right = codes(&format!("right{round}"), 3000);
        left[1500] = "shared".to_owned();
        right[2500] = "shared".to_owned();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [left, right]
            .into_iter()
            .map(|list| {
                let (store, program, barrier) = (f.store.clone(), program.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let chunks = chunks(&program, &list, 500);
                    barrier.wait();
                    import(&store, &program, chunks, ImportStep::Done).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<ImportOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let committed = outcomes
            .iter()
            .filter(|o| matches!(o, ImportOutcome::Imported(3000)))
            .count();
        assert_eq!(committed, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, ImportOutcome::RolledBack { taken } if taken.len() == 1)),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(count(&f.store, &tenant, &program), 3000);
        assert_eq!(
            ProgramStore::get(&f.store, &tenant, &program.id)
                .unwrap()
                .issued_tickets,
            3000
        );
    }
}
