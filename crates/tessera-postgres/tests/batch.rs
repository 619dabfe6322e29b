//! Bulk issuance: `reserve`, `insert_reserved`, `release` and `record_batch`.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Barrier};

use common::{at, attempt, events, fixture, hash, limit, max_tickets, new_ticket, now, subject};
use diesel::sql_types::{Jsonb, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::model::NewTicket;
use tessera_app::ports::{ProgramStore, RedemptionStore, StoreError, TicketStore};
use tessera_domain::{PageRequest, Program, ProgramId, TenantId};
use tessera_postgres::PgStore;

fn issued(store: &PgStore, tenant: &TenantId, program: &ProgramId) -> u32 {
    ProgramStore::get(store, tenant, program)
        .unwrap()
        .issued_tickets
}

fn tickets_of(pool: &tessera_postgres::PgPool, tenant: &TenantId) -> i64 {
    common::scalar(
        pool,
        "SELECT count(*) AS n FROM tickets WHERE tenant_id = $1",
        tenant,
    )
}

/// `n` tickets with codes `{prefix}-0`, `{prefix}-1`, …
fn chunk(program: &Program, prefix: &str, n: usize) -> Vec<NewTicket> {
    (0..n)
        .map(|i| new_ticket(program, &format!("{prefix}-{i}"), |_| {}))
        .collect()
}

#[test]
fn reserve_is_all_or_nothing_against_the_cap() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_tickets = max_tickets(10));
    let reserved = f.store.reserve(&tenant, &program.id, 7, now()).unwrap();
    assert_eq!(reserved.id, program.id);
    assert_eq!(reserved.issued_tickets, 7);
    assert_eq!(
        f.store.reserve(&tenant, &program.id, 4, now()),
        Err(StoreError::MaxTicketsReached)
    );
    assert_eq!(
        issued(&f.store, &tenant, &program.id),
        7,
        "nothing reserved"
    );
    let reserved = f.store.reserve(&tenant, &program.id, 3, now()).unwrap();
    assert_eq!(reserved.issued_tickets, 10, "exactly up to the cap is fine");
    assert_eq!(
        f.store.reserve(&tenant, &program.id, 1, now()),
        Err(StoreError::MaxTicketsReached)
    );
    assert_eq!(issued(&f.store, &tenant, &program.id), 10);
}

#[test]
fn an_unlimited_program_reserves_any_count() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let reserved = f
        .store
        .reserve(&tenant, &program.id, 1_000_000, now())
        .unwrap();
    assert_eq!(reserved.issued_tickets, 1_000_000);
}

#[test]
fn reserving_from_a_missing_suspended_or_ended_program_is_refused() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_tickets = max_tickets(5));
    assert_eq!(
        f.store.reserve(&tenant, &ProgramId::generate(), 1, now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.reserve(&tenant, &program.id, 1, at(1000)),
        Err(StoreError::ProgramNotActive),
        "ended"
    );
    assert_eq!(
        f.store.reserve(&tenant, &program.id, 6, at(1000)),
        Err(StoreError::ProgramNotActive),
        "not active wins over the cap"
    );
    // Not started yet is fine, as for single issuance.
    f.store.reserve(&tenant, &program.id, 1, at(-20)).unwrap();
    f.store
        .update(
            &program.suspended(at(1)),
            tessera_domain::EventType::ProgramSuspended,
        )
        .unwrap();
    assert_eq!(
        f.store.reserve(&tenant, &program.id, 1, now()),
        Err(StoreError::ProgramNotActive),
        "suspended"
    );
    assert_eq!(issued(&f.store, &tenant, &program.id), 1);
}

#[test]
fn another_tenants_program_is_not_found() {
    let f = fixture();
    let owner = common::tenant(&f.store);
    let other = common::tenant(&f.store);
    let program = common::program(&f.store, &owner, |new| new.max_tickets = max_tickets(5));
    f.store.reserve(&owner, &program.id, 2, now()).unwrap();
    assert_eq!(
        f.store.reserve(&other, &program.id, 1, now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.release(&other, &program.id, 2),
        Err(StoreError::NotFound)
    );
    assert_eq!(issued(&f.store, &owner, &program.id), 2, "untouched");
}

#[test]
fn concurrent_reserves_never_exceed_the_cap() {
    const THREADS: usize = 20;
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(THREADS as u32));
    let tenant = common::tenant(&store);
    let program = common::program(&store, &tenant, |new| new.max_tickets = max_tickets(30));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (barrier, store, tenant, id) = (
                barrier.clone(),
                store.clone(),
                tenant.clone(),
                program.id.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                store.reserve(&tenant, &id, 3, now()).map(|_| ())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 10, "{results:?}");
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::MaxTicketsReached))));
    assert_eq!(issued(&store, &tenant, &program.id), 30);
}

#[test]
fn reserved_tickets_round_trip_and_redeem_without_per_ticket_events() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.max_tickets = max_tickets(3);
        new.max_redemptions = limit(2);
    });
    f.store.reserve(&tenant, &program.id, 3, now()).unwrap();
    let tickets = vec![
        new_ticket(&program, "a", |_| {}),
        new_ticket(&program, "b", |t| {
            t.max_redemptions = Some(limit(1));
            t.payload = Some(common::payload(r#"{"seat":"B2"}"#));
        }),
        new_ticket(&program, "c", |t| {
            t.email = Some(common::email("Ann@Example.com"));
            t.subject = Some(subject("user-1"));
        }),
    ];
    assert_eq!(
        f.store.insert_reserved(&tickets).unwrap(),
        Vec::<usize>::new()
    );
    for new in &tickets {
        let view = TicketStore::get(&f.store, &tenant, &new.ticket.id).unwrap();
        assert_eq!(view.ticket, new.ticket);
        assert_eq!(view.program_limit, limit(2));
    }
    let page = TicketStore::list(&f.store, &tenant, &program.id, PageRequest::default()).unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        issued(&f.store, &tenant, &program.id),
        3,
        "the reservation already counted them"
    );

    let redeemed = f
        .store
        .redeem(&attempt(&program, "b", None))
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.ticket_id, tickets[1].ticket.id);
    assert_eq!(redeemed.remaining, 0);
    assert_eq!(redeemed.payload, Some(common::payload(r#"{"seat":"B2"}"#)));
    let redeemed = f
        .store
        .redeem(&attempt(&program, "c", Some("ann@example.com")))
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.ticket_id, tickets[2].ticket.id);
    assert_eq!(redeemed.remaining, 1);

    assert_eq!(events(&f.db.pool(), &tenant, "ticket.issued"), 0);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.batch_issued"), 0);
}

#[test]
fn an_existing_hash_skips_exactly_that_row() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "taken", |_| {});
    let mut linked = new_ticket(&program, "linked", |_| {});
    linked.link_hash = Some(hash("link"));
    f.store.issue(&linked, now()).unwrap();

    let mut tickets = chunk(&program, "fresh", 5);
    tickets[1] = new_ticket(&program, "taken", |_| {});
    tickets[3].link_hash = Some(hash("link"));
    assert_eq!(f.store.insert_reserved(&tickets).unwrap(), vec![1, 3]);
    for (i, new) in tickets.iter().enumerate() {
        let found = TicketStore::get(&f.store, &tenant, &new.ticket.id);
        if [1, 3].contains(&i) {
            assert_eq!(found, Err(StoreError::NotFound), "row {i} was skipped");
        } else {
            assert_eq!(found.unwrap().ticket, new.ticket, "row {i} was inserted");
        }
    }
    assert_eq!(tickets_of(&f.db.pool(), &tenant), 2 + 3);

    // Two rows of one chunk with the same code: exactly one goes in.
    let twins = [
        new_ticket(&program, "twin", |_| {}),
        new_ticket(&program, "other", |_| {}),
        new_ticket(&program, "twin", |_| {}),
    ];
    let skipped = f.store.insert_reserved(&twins).unwrap();
    assert!(skipped == [0] || skipped == [2], "{skipped:?}");
    let kept = &twins[2 - skipped[0]];
    assert_eq!(
        TicketStore::get(&f.store, &tenant, &kept.ticket.id)
            .unwrap()
            .ticket,
        kept.ticket
    );
    assert_eq!(tickets_of(&f.db.pool(), &tenant), 2 + 3 + 2);

    // The same ticket twice: the second is reported, not counted as issued.
    let same = new_ticket(&program, "same", |_| {});
    assert_eq!(
        f.store
            .insert_reserved(&[same.clone(), same.clone()])
            .unwrap(),
        vec![1]
    );

    // Without links or subjects only the code hash arbitrates; a link in the
    // chunk switches to every unique index, and the code clash is still skipped.
    let mut mixed = chunk(&program, "mixed", 3);
    mixed[0].link_hash = Some(hash("fresh-link"));
    mixed[2] = new_ticket(&program, "taken", |_| {});
    assert_eq!(f.store.insert_reserved(&mixed).unwrap(), vec![2]);

    // The same code in another tenant is no conflict: codes are unique per tenant.
    let other = common::tenant(&f.store);
    let elsewhere = common::program(&f.store, &other, |_| {});
    assert_eq!(
        f.store
            .insert_reserved(&[new_ticket(&elsewhere, "taken", |_| {})])
            .unwrap(),
        Vec::<usize>::new()
    );
}

#[test]
fn a_subject_clash_is_reported_and_writes_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.one_active_per_subject = true);
    common::issue(&f.store, &program, "first", |t| {
        t.subject = Some(subject("u"))
    });
    let tickets = vec![
        new_ticket(&program, "x", |_| {}),
        new_ticket(&program, "y", |t| t.subject = Some(subject("u"))),
    ];
    assert_eq!(
        f.store.insert_reserved(&tickets),
        Err(StoreError::SubjectHasActiveTicket)
    );
    assert_eq!(
        tickets_of(&f.db.pool(), &tenant),
        1,
        "the chunk rolled back"
    );
    // Another subject goes in, with the program's exclusivity applied.
    let ok = [new_ticket(&program, "z", |t| {
        t.subject = Some(subject("v"))
    })];
    assert_eq!(f.store.insert_reserved(&ok).unwrap(), Vec::<usize>::new());
    assert_eq!(
        f.store
            .insert_reserved(&[new_ticket(&program, "w", |t| t.subject = Some(subject("v")))]),
        Err(StoreError::SubjectHasActiveTicket)
    );
}

#[test]
fn an_empty_chunk_is_a_no_op() {
    let f = fixture();
    assert_eq!(f.store.insert_reserved(&[]).unwrap(), Vec::<usize>::new());
}

#[test]
fn a_chunk_of_5000_is_not_limited_by_bind_parameters() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_tickets = max_tickets(5000));
    f.store.reserve(&tenant, &program.id, 5000, now()).unwrap();
    let tickets: Vec<_> = (0..5000)
        .map(|i| {
            new_ticket(&program, &format!("bulk-{i}"), |t| {
                t.payload = Some(common::payload(r#"{"batch":1}"#));
            })
        })
        .collect();
    assert_eq!(
        f.store.insert_reserved(&tickets).unwrap(),
        Vec::<usize>::new()
    );
    assert_eq!(tickets_of(&f.db.pool(), &tenant), 5000);
    let last = TicketStore::get(&f.store, &tenant, &tickets[4999].ticket.id).unwrap();
    assert_eq!(last.ticket, tickets[4999].ticket);
}

#[test]
fn release_gives_places_back_but_never_below_zero() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_tickets = max_tickets(10));
    f.store.reserve(&tenant, &program.id, 8, now()).unwrap();
    f.store.release(&tenant, &program.id, 5).unwrap();
    assert_eq!(issued(&f.store, &tenant, &program.id), 3);
    f.store.reserve(&tenant, &program.id, 7, now()).unwrap();
    assert_eq!(issued(&f.store, &tenant, &program.id), 10);
    f.store.release(&tenant, &program.id, 25).unwrap();
    assert_eq!(issued(&f.store, &tenant, &program.id), 0);
    assert_eq!(
        f.store.release(&tenant, &ProgramId::generate(), 1),
        Err(StoreError::NotFound)
    );
}

#[derive(QueryableByName)]
struct EventData {
    #[diesel(sql_type = Text)]
    program_id: String,
    #[diesel(sql_type = Jsonb)]
    data: serde_json::Value,
}

#[test]
fn record_batch_writes_one_event_with_the_count() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    f.store
        .record_batch(&tenant, &program.id, 1234, now())
        .unwrap();
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.batch_issued"), 1);
    let mut conn = f.db.pool().get().unwrap();
    let event = sql_query(
        "SELECT program_id, data FROM events WHERE tenant_id = $1 AND type = 'ticket.batch_issued'",
    )
    .bind::<Text, _>(tenant.as_str())
    .get_result::<EventData>(&mut conn)
    .unwrap();
    assert_eq!(event.program_id, program.id.as_str());
    assert_eq!(event.data, serde_json::json!({ "count": 1234 }));
}

/// A rough insert rate for 5,000-row chunks (100,000 rows, or
/// `TESSERA_PROBE_ROWS`); run with
/// `cargo test -p tessera-postgres --release --test batch -- --ignored --nocapture`.
#[test]
#[ignore = "timing probe: prints a rate, asserts nothing about time"]
fn probe_insert_rate() {
    const CHUNK: usize = 5_000;
    let total: usize = std::env::var("TESSERA_PROBE_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(100_000);
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    f.store
        .reserve(&tenant, &program.id, u32::try_from(total).unwrap(), now())
        .unwrap();
    let mut in_store = std::time::Duration::ZERO;
    for c in 0..total / CHUNK {
        let tickets = chunk(&program, &format!("probe-{c}"), CHUNK);
        let started = std::time::Instant::now();
        assert!(f.store.insert_reserved(&tickets).unwrap().is_empty());
        in_store += started.elapsed();
        if (c + 1) % 40 == 0 {
            eprintln!(
                "{} rows: {:.0} rows/s so far",
                (c + 1) * CHUNK,
                ((c + 1) * CHUNK) as f64 / in_store.as_secs_f64()
            );
        }
    }
    let inserted = total / CHUNK * CHUNK;
    eprintln!(
        "inserted {inserted} tickets in {CHUNK}-row chunks in {in_store:.2?}: {:.0} rows/s",
        inserted as f64 / in_store.as_secs_f64()
    );
    assert_eq!(tickets_of(&f.db.pool(), &tenant), inserted as i64);
}

#[derive(QueryableByName)]
struct Known {
    #[diesel(sql_type = diesel::sql_types::Float)]
    reltuples: f32,
}

fn known_tickets(f: &common::Fixture) -> f32 {
    let mut conn = f.db.pool().get().unwrap();
    sql_query("SELECT reltuples FROM pg_class WHERE relname = 'tickets'")
        .get_result::<Known>(&mut conn)
        .unwrap()
        .reltuples
}

/// Issue 12: the crowd redeems right after a batch, so recording it refreshes the
/// planner's statistics (a table never analysed, or grown by a tenth or more).
#[test]
fn recording_a_batch_analyses_the_tickets_it_grew() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    assert!(known_tickets(&f) < 0.0, "the template is never analysed");
    f.store.reserve(&tenant, &program.id, 300, now()).unwrap();
    assert!(f
        .store
        .insert_reserved(&chunk(&program, "a", 200))
        .unwrap()
        .is_empty());
    f.store
        .record_batch(&tenant, &program.id, 200, now())
        .unwrap();
    assert_eq!(known_tickets(&f), 200.0);
    // 10 more on 200 known (5 %) leaves the statistics as they are; 100 refreshes.
    assert!(f
        .store
        .insert_reserved(&chunk(&program, "b", 10))
        .unwrap()
        .is_empty());
    f.store
        .record_batch(&tenant, &program.id, 10, now())
        .unwrap();
    assert_eq!(known_tickets(&f), 200.0);
    assert!(f
        .store
        .insert_reserved(&chunk(&program, "c", 90))
        .unwrap()
        .is_empty());
    f.store
        .record_batch(&tenant, &program.id, 90, now())
        .unwrap();
    assert_eq!(known_tickets(&f), 300.0);
}
