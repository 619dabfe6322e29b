//! Bulk issuance with several writers (`Limits::batch_writers`): chunks written
//! at once, each handed to the sink after its insert, in the order they finish;
//! every place accounted for whichever chunk fails or whenever the sink leaves.

use std::collections::HashSet;

use tessera_domain::TicketId;

use super::batch::*;
use crate::service::batch::BATCH_CHUNK;
use crate::service::test_support::*;
use crate::service::Limits;
use crate::usecases::TicketUseCases;
use crate::AppError;

/// 20 chunks: enough that a batch stopped early visibly stops claiming.
const COUNT: u32 = 20 * BATCH_CHUNK as u32;

fn harness(writers: u8) -> Harness {
    let mut h = Harness::new();
    h.limits = Limits {
        batch_writers: writers,
        ..Limits::default()
    };
    h
}

fn released(log: &Recorder<Step>) -> u32 {
    log.all()
        .iter()
        .filter_map(|step| match step {
            Step::Release(count) => Some(*count),
            _ => None,
        })
        .sum()
}

fn recorded(log: &Recorder<Step>) -> Vec<u32> {
    log.all()
        .iter()
        .filter_map(|step| match step {
            Step::Record(count) => Some(*count),
            _ => None,
        })
        .collect()
}

fn inserted_ids(log: &Recorder<Step>) -> Vec<HashSet<TicketId>> {
    inserted(log)
        .iter()
        .map(|chunk| chunk.iter().map(|new| new.ticket.id.clone()).collect())
        .collect()
}

/// Every delivered chunk is one inserted chunk, whole, and its insert came first.
#[track_caller]
fn assert_each_delivery_follows_its_insert(log: &Recorder<Step>) {
    let mut written: Vec<HashSet<TicketId>> = Vec::new();
    for step in log.all() {
        match step {
            Step::Insert(chunk) => {
                written.push(chunk.iter().map(|n| n.ticket.id.clone()).collect())
            }
            Step::Deliver(chunk) => {
                let ids: HashSet<TicketId> = ids(&chunk).into_iter().collect();
                assert!(
                    written.contains(&ids),
                    "a chunk of {} was delivered before (or without) its insert",
                    ids.len()
                );
            }
            Step::Release(_) | Step::Record(_) => {}
        }
    }
}

#[test]
fn four_writers_issue_every_ticket_once_each_chunk_delivered_after_its_insert() {
    let program = program();
    let log = Recorder::new();
    let mut h = harness(4);
    expect_reserve(&mut h, &tenant(), &program, COUNT + 3);
    expect_inserts(&mut h, &log, vec![]);
    expect_release_and_record(&mut h, &program, &log);
    let issued = h.build().issue_batch(
        &issuer(),
        &program.id,
        batch(COUNT + 3),
        &mut sink(&log, usize::MAX),
    );
    assert_eq!(issued, Ok(COUNT + 3));
    let mut sizes: Vec<usize> = inserted(&log).iter().map(Vec::len).collect();
    sizes.sort_unstable();
    let mut expected = vec![BATCH_CHUNK; 20];
    expected.insert(0, 3);
    assert_eq!(
        sizes, expected,
        "the count split into whole chunks and the rest"
    );
    let delivered: Vec<TicketId> = delivered(&log)
        .iter()
        .flat_map(|chunk| ids(chunk))
        .collect();
    let unique: HashSet<&TicketId> = delivered.iter().collect();
    assert_eq!(delivered.len(), COUNT as usize + 3);
    assert_eq!(unique.len(), delivered.len(), "no ticket handed out twice");
    assert_each_delivery_follows_its_insert(&log);
    assert_delivered_codes_match_what_was_inserted(&log);
    assert_eq!((released(&log), recorded(&log)), (0, vec![COUNT + 3]));
}

#[test]
fn with_two_writers_an_insert_error_stops_the_batch_and_keeps_the_places_of_what_was_written() {
    // The fourth insert fails; the others, before and after it, succeed.
    let program = program();
    let log = Recorder::new();
    let mut h = harness(2);
    expect_reserve(&mut h, &tenant(), &program, COUNT);
    expect_inserts(
        &mut h,
        &log,
        vec![Some(vec![]), Some(vec![]), Some(vec![]), None],
    );
    expect_release_and_record(&mut h, &program, &log);
    let outcome = h.build().issue_batch(
        &issuer(),
        &program.id,
        batch(COUNT),
        &mut sink(&log, usize::MAX),
    );
    assert_eq!(outcome, Err(AppError::Unavailable));
    let inserts = inserted(&log).len();
    assert!(
        (4..20).contains(&inserts),
        "the batch stops claiming after the failure: {inserts} inserts"
    );
    // Every insert but the failed one wrote a whole chunk: those places stay
    // taken and are recorded, the rest are given back.
    let written = (inserts as u32 - 1) * BATCH_CHUNK as u32;
    assert_eq!(
        (released(&log), recorded(&log)),
        (COUNT - written, vec![written])
    );
    assert_each_delivery_follows_its_insert(&log);
    let delivered: usize = delivered(&log).iter().map(Vec::len).sum();
    assert!(
        delivered as u32 <= written,
        "{delivered} delivered of {written} written"
    );
}

#[test]
fn with_two_writers_a_sink_that_goes_away_stops_the_claims_and_counts_the_chunks_written_after() {
    let program = program();
    let log = Recorder::new();
    let mut h = harness(2);
    expect_reserve(&mut h, &tenant(), &program, COUNT);
    expect_inserts(&mut h, &log, vec![]);
    expect_release_and_record(&mut h, &program, &log);
    let issued = h
        .build()
        .issue_batch(&issuer(), &program.id, batch(COUNT), &mut sink(&log, 1))
        .expect("a receiver leaving is not an error");
    let chunks = inserted_ids(&log);
    // Written chunks hold their places, delivered or not (a writer finishes the
    // chunk it holds); nothing more is claimed.
    assert_eq!(
        issued as usize,
        chunks.iter().map(HashSet::len).sum::<usize>()
    );
    assert!(issued < COUNT, "the batch went on after its receiver left");
    assert_eq!(
        (released(&log), recorded(&log)),
        (COUNT - issued, vec![issued])
    );
    // The sink saw its one accepted chunk and the one it refused, no more.
    assert_eq!(delivered(&log).len(), 2);
    assert_each_delivery_follows_its_insert(&log);
}
