//! Bulk issuance: one reservation, chunks committed then handed to the sink,
//! collisions retried, unused places given back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use mockall::predicate::eq;
use tessera_domain::{
    BatchSize, Payload, Program, RedemptionLimit, Role, TenantId, TicketId, TicketState,
};

use crate::model::{NewTicket, SecretHash};
use crate::ports::StoreError;
use crate::service::batch::BATCH_CHUNK;
use crate::service::test_support::*;
use crate::service::SECRET_ATTEMPTS;
use crate::usecases::{BatchRequest, IssuedCode, Principal, TicketUseCases};
use crate::AppError;

pub(super) fn batch(count: u32) -> BatchRequest {
    BatchRequest {
        count: BatchSize::try_from(i64::from(count)).expect("a valid batch size"),
        max_redemptions: None,
        payload: None,
    }
}

/// What happened, in order: the store's writes and the sink's deliveries.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Insert(Vec<NewTicket>),
    Deliver(Vec<IssuedCode>),
    Release(u32),
    Record(u32),
}

impl Step {
    /// The step without its tickets, for comparing sequences.
    fn shape(&self) -> String {
        match self {
            Step::Insert(tickets) => format!("insert {}", tickets.len()),
            Step::Deliver(chunk) => format!("deliver {}", chunk.len()),
            Step::Release(count) => format!("release {count}"),
            Step::Record(count) => format!("record {count}"),
        }
    }
}

fn shapes(log: &Recorder<Step>) -> Vec<String> {
    log.all().iter().map(Step::shape).collect()
}

pub(super) fn inserted(log: &Recorder<Step>) -> Vec<Vec<NewTicket>> {
    log.all()
        .into_iter()
        .filter_map(|step| match step {
            Step::Insert(tickets) => Some(tickets),
            _ => None,
        })
        .collect()
}

pub(super) fn delivered(log: &Recorder<Step>) -> Vec<Vec<IssuedCode>> {
    log.all()
        .into_iter()
        .filter_map(|step| match step {
            Step::Deliver(chunk) => Some(chunk),
            _ => None,
        })
        .collect()
}

/// Tickets reserves `count` places of `program` for `tenant_id` at [`now`], once.
pub(super) fn expect_reserve(h: &mut Harness, tenant_id: &TenantId, program: &Program, count: u32) {
    let reserved = program.clone();
    h.tickets
        .expect_reserve()
        .with(
            eq(tenant_id.clone()),
            eq(program.id.clone()),
            eq(count),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _| Ok(reserved.clone()));
}

/// `insert_reserved` logs every call and answers from `answers` in turn (then
/// skips nothing); a `None` answer is a store failure.
pub(super) fn expect_inserts(
    h: &mut Harness,
    log: &Recorder<Step>,
    answers: Vec<Option<Vec<usize>>>,
) {
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let log = log.clone();
    h.tickets
        .expect_insert_reserved()
        .returning(move |tickets| {
            log.record(Step::Insert(tickets.to_vec()));
            match answers.lock().expect("answers").pop_front() {
                Some(Some(skipped)) => Ok(skipped),
                Some(None) => Err(StoreError::Unavailable("down".to_owned())),
                None => Ok(Vec::new()),
            }
        });
}

/// `release` and `record_batch` log their counts, scoped to [`tenant`] and
/// `program`, any number of times (the log tells how many).
pub(super) fn expect_release_and_record(h: &mut Harness, program: &Program, log: &Recorder<Step>) {
    let released = log.clone();
    h.tickets
        .expect_release()
        .with(
            eq(tenant()),
            eq(program.id.clone()),
            mockall::predicate::always(),
        )
        .returning(move |_, _, count| {
            released.record(Step::Release(count));
            Ok(())
        });
    let recorded = log.clone();
    h.tickets
        .expect_record_batch()
        .with(
            eq(tenant()),
            eq(program.id.clone()),
            mockall::predicate::always(),
            eq(now()),
        )
        .returning(move |_, _, count, _| {
            recorded.record(Step::Record(count));
            Ok(())
        });
}

/// A sink that logs every chunk and accepts the first `accepted` of them.
pub(super) fn sink(log: &Recorder<Step>, accepted: usize) -> impl FnMut(&[IssuedCode]) -> bool {
    let log = log.clone();
    let mut seen = 0;
    move |chunk: &[IssuedCode]| {
        log.record(Step::Deliver(chunk.to_vec()));
        seen += 1;
        seen <= accepted
    }
}

/// Every delivered ticket was inserted with the hash of the code delivered for it.
#[track_caller]
pub(super) fn assert_delivered_codes_match_what_was_inserted(log: &Recorder<Step>) {
    let hashes: HashMap<TicketId, SecretHash> = inserted(log)
        .into_iter()
        .flatten()
        .map(|new| (new.ticket.id, new.code_hash))
        .collect();
    for issued in delivered(log).into_iter().flatten() {
        assert_eq!(
            hashes.get(&issued.ticket_id),
            Some(&code_hash_of(&tenant(), issued.code.expose_secret())),
            "{}",
            issued.ticket_id
        );
    }
}

pub(super) fn ids(chunk: &[IssuedCode]) -> Vec<TicketId> {
    chunk
        .iter()
        .map(|issued| issued.ticket_id.clone())
        .collect()
}

#[test]
fn the_chunk_size_is_five_thousand() {
    assert_eq!(BATCH_CHUNK, 5_000);
}

#[test]
fn redeemers_may_not_issue_a_batch_and_nothing_is_touched() {
    for role in roles_except(&[Role::Admin, Role::Issuer]) {
        let log = Recorder::new();
        assert_eq!(
            untouched().issue_batch(
                &principal(role),
                &program().id,
                batch(10),
                &mut sink(&log, usize::MAX)
            ),
            Err(AppError::Forbidden),
            "{role:?}"
        );
        assert!(log.all().is_empty(), "{role:?}");
    }
}

#[test]
fn the_whole_count_is_reserved_once_in_the_callers_tenant_and_recorded_on_success() {
    for caller in [
        issuer(),
        admin(),
        principal_of(other_tenant(), Role::Issuer),
    ] {
        let program = program_in(caller.tenant_id.clone());
        let log = Recorder::new();
        let mut h = Harness::new();
        expect_reserve(&mut h, &caller.tenant_id, &program, 7);
        expect_inserts(&mut h, &log, vec![]);
        let recorded = log.clone();
        h.tickets
            .expect_record_batch()
            .with(
                eq(caller.tenant_id.clone()),
                eq(program.id.clone()),
                eq(7),
                eq(now()),
            )
            .times(1)
            .returning(move |_, _, count, _| {
                recorded.record(Step::Record(count));
                Ok(())
            });
        assert_eq!(
            h.build()
                .issue_batch(&caller, &program.id, batch(7), &mut sink(&log, usize::MAX)),
            Ok(7),
            "{caller:?}"
        );
        assert_eq!(shapes(&log), ["insert 7", "deliver 7", "record 7"]);
    }
}

#[test]
fn a_refused_reservation_is_returned_and_no_ticket_is_written() {
    for (store_error, expected) in [
        (StoreError::NotFound, AppError::NotFound),
        (StoreError::ProgramNotActive, AppError::ProgramNotActive),
        (StoreError::MaxTicketsReached, AppError::MaxTicketsReached),
    ] {
        let program = program();
        let mut h = Harness::new();
        let refusal = store_error.clone();
        h.tickets
            .expect_reserve()
            .times(1)
            .returning(move |_, _, _, _| Err(refusal.clone()));
        // No insert, release or record expectation: any of them fails the test.
        let log = Recorder::new();
        assert_eq!(
            h.build().issue_batch(
                &issuer(),
                &program.id,
                batch(1_000),
                &mut sink(&log, usize::MAX)
            ),
            Err(expected),
            "{store_error:?}"
        );
        assert!(log.all().is_empty(), "{store_error:?}");
    }
}

#[test]
fn twelve_thousand_tickets_reach_the_sink_in_chunks_of_5000_5000_and_2000_each_after_its_insert() {
    let program = program();
    let log = Recorder::new();
    let mut h = Harness::new();
    expect_reserve(&mut h, &tenant(), &program, 12_000);
    expect_inserts(&mut h, &log, vec![]);
    expect_release_and_record(&mut h, &program, &log);
    assert_eq!(
        h.build().issue_batch(
            &issuer(),
            &program.id,
            batch(12_000),
            &mut sink(&log, usize::MAX)
        ),
        Ok(12_000)
    );

    assert_eq!(
        shapes(&log),
        [
            "insert 5000",
            "deliver 5000",
            "insert 5000",
            "deliver 5000",
            "insert 2000",
            "deliver 2000",
            "record 12000"
        ]
    );
    for (written, handed_out) in inserted(&log).iter().zip(delivered(&log)) {
        let written: Vec<TicketId> = written.iter().map(|new| new.ticket.id.clone()).collect();
        assert_eq!(
            ids(&handed_out),
            written,
            "each chunk is the one just written"
        );
    }
    let unique: HashSet<TicketId> = delivered(&log).iter().flat_map(|c| ids(c)).collect();
    assert_eq!(unique.len(), 12_000);
    assert_delivered_codes_match_what_was_inserted(&log);
}

#[test]
fn batch_tickets_are_active_tickets_of_the_program_with_the_requested_limit_and_payload_and_no_link(
) {
    let program = program();
    let log = Recorder::new();
    let mut h = Harness::new();
    expect_reserve(&mut h, &tenant(), &program, 3);
    expect_inserts(&mut h, &log, vec![]);
    expect_release_and_record(&mut h, &program, &log);
    let request = BatchRequest {
        max_redemptions: Some(RedemptionLimit::try_from(2).expect("valid limit")),
        payload: Some(Payload::from_json_text("{\"tier\":\"gold\"}".to_owned()).expect("payload")),
        ..batch(3)
    };
    h.build()
        .issue_batch(&issuer(), &program.id, request.clone(), &mut sink(&log, 1))
        .expect("issued");

    let [written] = inserted(&log).try_into().expect("one insert");
    assert_eq!(written.len(), 3);
    for new in written {
        assert_eq!(new.link_hash, None);
        assert_eq!(new.ticket.tenant_id, tenant());
        assert_eq!(new.ticket.program_id, program.id);
        assert_eq!(new.ticket.max_redemptions, request.max_redemptions);
        assert_eq!(new.ticket.payload, request.payload);
        assert_eq!(new.ticket.email, None);
        assert_eq!(new.ticket.subject, None);
        assert_eq!(new.ticket.state, TicketState::Active);
        assert_eq!(new.ticket.redemptions, 0);
        assert_eq!(new.ticket.failed_attempts, 0);
        assert_eq!(new.ticket.created_at, now());
        assert_eq!(new.ticket.version, 1);
    }
}

#[test]
fn tickets_the_store_skipped_are_retried_with_fresh_codes_and_handed_out_exactly_once() {
    let program = program();
    let log = Recorder::new();
    let mut h = Harness::new();
    expect_reserve(&mut h, &tenant(), &program, 5_002);
    // The first chunk: two collide, then one of their replacements collides again.
    expect_inserts(
        &mut h,
        &log,
        vec![Some(vec![0, 4_999]), Some(vec![1]), Some(vec![])],
    );
    expect_release_and_record(&mut h, &program, &log);
    assert_eq!(
        h.build().issue_batch(
            &issuer(),
            &program.id,
            batch(5_002),
            &mut sink(&log, usize::MAX)
        ),
        Ok(5_002)
    );

    assert_eq!(
        shapes(&log),
        [
            "insert 5000",
            "insert 2",
            "insert 1",
            "deliver 5000",
            "insert 2",
            "deliver 2",
            "record 5002"
        ]
    );
    let [first, second, third, _] = inserted(&log).try_into().expect("four inserts");
    let skipped = [&first[0], &first[4_999], &second[1]];
    for (retry, skipped_by) in [(&second, &first), (&third, &second)] {
        for fresh in retry {
            assert!(
                skipped_by
                    .iter()
                    .all(|old| old.code_hash != fresh.code_hash && old.ticket.id != fresh.ticket.id),
                "a retried ticket has a fresh code and id"
            );
        }
    }
    let handed_out: Vec<TicketId> = delivered(&log).iter().flat_map(|c| ids(c)).collect();
    let unique: HashSet<&TicketId> = handed_out.iter().collect();
    assert_eq!(handed_out.len(), 5_002);
    assert_eq!(unique.len(), 5_002, "no ticket is handed out twice");
    for never in skipped {
        assert!(
            !unique.contains(&never.ticket.id),
            "a skipped ticket is not handed out"
        );
    }
    let written: HashSet<&TicketId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|new| &new.ticket.id)
        .filter(|id| skipped.iter().all(|s| s.ticket.id != **id))
        .collect();
    let first_chunk: HashSet<TicketId> = ids(&delivered(&log)[0]).into_iter().collect();
    assert_eq!(
        first_chunk,
        written.into_iter().cloned().collect(),
        "the first chunk is exactly what the three inserts kept"
    );
    assert_delivered_codes_match_what_was_inserted(&log);
}

#[test]
fn a_sink_that_goes_away_stops_the_batch_gives_back_the_unused_places_and_records_the_issued() {
    for (accepted, expected_steps, expected) in [
        (
            0,
            vec!["insert 5000", "deliver 5000", "release 7000", "record 5000"],
            5_000,
        ),
        (
            1,
            vec![
                "insert 5000",
                "deliver 5000",
                "insert 5000",
                "deliver 5000",
                "release 2000",
                "record 10000",
            ],
            10_000,
        ),
        (
            2,
            vec![
                "insert 5000",
                "deliver 5000",
                "insert 5000",
                "deliver 5000",
                "insert 2000",
                "deliver 2000",
                "record 12000",
            ],
            12_000,
        ),
    ] {
        let program = program();
        let log = Recorder::new();
        let mut h = Harness::new();
        expect_reserve(&mut h, &tenant(), &program, 12_000);
        expect_inserts(&mut h, &log, vec![]);
        expect_release_and_record(&mut h, &program, &log);
        assert_eq!(
            h.build().issue_batch(
                &issuer(),
                &program.id,
                batch(12_000),
                &mut sink(&log, accepted)
            ),
            Ok(expected),
            "sink accepting {accepted} chunks"
        );
        assert_eq!(
            shapes(&log),
            expected_steps,
            "sink accepting {accepted} chunks"
        );
    }
}

#[test]
fn an_insert_error_gives_back_the_unused_places_records_the_written_tickets_and_is_returned() {
    for (answers, expected_steps) in [
        (vec![None], vec!["insert 5000", "release 12000"]),
        (
            vec![Some(vec![]), None],
            vec![
                "insert 5000",
                "deliver 5000",
                "insert 5000",
                "release 7000",
                "record 5000",
            ],
        ),
        // Inside a chunk: 4,998 tickets were written before the retry failed;
        // their places stay taken.
        (
            vec![Some(vec![]), Some(vec![3, 4]), None],
            vec![
                "insert 5000",
                "deliver 5000",
                "insert 5000",
                "insert 2",
                "release 2002",
                "record 9998",
            ],
        ),
    ] {
        let program = program();
        let log = Recorder::new();
        let mut h = Harness::new();
        expect_reserve(&mut h, &tenant(), &program, 12_000);
        expect_inserts(&mut h, &log, answers);
        expect_release_and_record(&mut h, &program, &log);
        assert_eq!(
            h.build().issue_batch(
                &issuer(),
                &program.id,
                batch(12_000),
                &mut sink(&log, usize::MAX)
            ),
            Err(AppError::Unavailable)
        );
        assert_eq!(shapes(&log), expected_steps);
    }
}

#[test]
fn codes_that_keep_colliding_give_up_with_internal_keeping_the_places_of_tickets_written() {
    let program = program();
    let log = Recorder::new();
    let mut h = Harness::new();
    expect_reserve(&mut h, &tenant(), &program, 3);
    // Every insert skips its first ticket.
    expect_inserts(&mut h, &log, vec![Some(vec![0]); SECRET_ATTEMPTS]);
    expect_release_and_record(&mut h, &program, &log);
    assert!(matches!(
        h.build().issue_batch(
            &issuer(),
            &program.id,
            batch(3),
            &mut sink(&log, usize::MAX)
        ),
        Err(AppError::Internal(_))
    ));
    let mut expected = vec!["insert 3".to_owned()];
    expected.extend((1..SECRET_ATTEMPTS).map(|_| "insert 1".to_owned()));
    expected.extend(["release 1".to_owned(), "record 2".to_owned()]);
    assert_eq!(shapes(&log), expected);
}

#[test]
fn a_batch_caller_of_another_tenant_never_reaches_this_tenants_program() {
    // The reservation is scoped by the caller's tenant: the store answers
    // NotFound for a program of another tenant, and nothing else happens.
    let program = program_in(other_tenant());
    let caller: Principal = issuer();
    let mut h = Harness::new();
    h.tickets
        .expect_reserve()
        .with(eq(tenant()), eq(program.id.clone()), eq(5), eq(now()))
        .times(1)
        .returning(|_, _, _, _| Err(StoreError::NotFound));
    let log = Recorder::new();
    assert_eq!(
        h.build()
            .issue_batch(&caller, &program.id, batch(5), &mut sink(&log, usize::MAX)),
        Err(AppError::NotFound)
    );
}
