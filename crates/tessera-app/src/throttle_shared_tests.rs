//! The throttle with a [`FailureLedger`]: several replicas, one budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use mockall::predicate::eq;
use tessera_domain::ProgramId;

use super::{minute_of, FailureSubject, FailureThrottle};
use crate::ports::{MockFailureLedger, StoreError};

/// `seconds` after the start of a minute.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([192, 0, 2, last]))
}

fn fail(throttle: &FailureThrottle, client: Option<IpAddr>, now: DateTime<Utc>) {
    drop(throttle.admit(client, None, now).expect("admitted"));
}

/// A mock ledger that keeps real counts, shared by every mock made from it:
/// what PostgreSQL's `throttle_windows` does for the replicas.
fn counting_ledger(counts: &Arc<Mutex<HashMap<(String, i64), u32>>>) -> MockFailureLedger {
    let mut ledger = MockFailureLedger::new();
    let shared = counts.clone();
    ledger
        .expect_add_failures()
        .returning(move |subjects, minute| {
            let mut counts = shared.lock().unwrap();
            Ok(subjects
                .iter()
                .map(|subject| {
                    let count = counts.entry((subject.key(), minute)).or_insert(0);
                    *count += 1;
                    *count
                })
                .collect())
        });
    ledger.expect_forget_before().returning(|_| Ok(0));
    ledger
}

/// Round-robin guesses from one address over `replicas`: how many were evaluated.
fn evaluated_round_robin(replicas: &[FailureThrottle], attempts: usize) -> usize {
    (0..attempts)
        .filter(|n| {
            let throttle = &replicas[n % replicas.len()];
            throttle
                .admit(ip(7), None, at(5))
                .map(drop) // every guess is wrong
                .is_ok()
        })
        .count()
}

#[test]
fn three_replicas_sharing_a_ledger_evaluate_the_budget_plus_at_most_two() {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let replicas: Vec<_> = (0..3)
        .map(|_| FailureThrottle::new(20).with_ledger(Arc::new(counting_ledger(&counts))))
        .collect();
    let evaluated = evaluated_round_robin(&replicas, 300);
    assert!((20..=22).contains(&evaluated), "{evaluated} evaluated");
    assert_eq!(
        counts.lock().unwrap()[&("client:192.0.2.7".to_owned(), minute_of(at(5)))],
        u32::try_from(evaluated).unwrap(),
        "the ledger counted every evaluated failure"
    );
}

#[test]
fn three_replicas_counting_alone_give_three_budgets() {
    let replicas: Vec<_> = (0..3).map(|_| FailureThrottle::new(20)).collect();
    assert_eq!(evaluated_round_robin(&replicas, 300), 60);
}

#[test]
fn a_failure_adopts_the_count_of_every_replica() {
    let mut ledger = MockFailureLedger::new();
    ledger.expect_forget_before().returning(|_| Ok(0));
    ledger
        .expect_add_failures()
        .times(1)
        .returning(|subjects, _| Ok(vec![3; subjects.len()]));
    let throttle = FailureThrottle::new(3).with_ledger(Arc::new(ledger));
    fail(&throttle, ip(1), at(1));
    assert_eq!(
        throttle.admit(ip(1), None, at(2)).map(drop),
        Err(58),
        "the other replicas spent the budget"
    );
}

#[test]
fn a_program_budget_is_shared_too() {
    let program = ProgramId::generate();
    let mut ledger = MockFailureLedger::new();
    ledger.expect_forget_before().returning(|_| Ok(0));
    let expected = vec![
        FailureSubject::Client(ip(1).unwrap()),
        FailureSubject::Program(program.clone()),
    ];
    ledger
        .expect_add_failures()
        .withf(move |subjects, _| subjects == expected.as_slice())
        .times(1)
        .returning(|_, _| Ok(vec![1, 30]));
    let throttle = FailureThrottle::new(3).with_ledger(Arc::new(ledger));
    let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
    throttle
        .join_program(&mut admission, &program)
        .expect("joined");
    drop(admission);
    assert!(throttle.program_over_budget(&program, at(2)));
    throttle
        .admit(ip(1), None, at(2))
        .expect("the client has spent one failure of 3")
        .succeeded();
}

#[test]
fn successes_never_reach_the_ledger() {
    let mut ledger = MockFailureLedger::new();
    ledger.expect_add_failures().never();
    ledger.expect_forget_before().never();
    let throttle = FailureThrottle::new(2).with_ledger(Arc::new(ledger));
    for _ in 0..50 {
        throttle
            .admit(ip(1), None, at(5))
            .expect("admitted")
            .succeeded();
    }
}

#[test]
fn without_the_ledger_the_replica_still_counts_alone() {
    let mut ledger = MockFailureLedger::new();
    ledger
        .expect_forget_before()
        .returning(|_| Err(StoreError::Unavailable("down".into())));
    ledger
        .expect_add_failures()
        .times(2)
        .returning(|_, _| Err(StoreError::Unavailable("down".into())));
    let throttle = FailureThrottle::new(2).with_ledger(Arc::new(ledger));
    fail(&throttle, ip(1), at(1));
    fail(&throttle, ip(1), at(1));
    assert!(throttle.admit(ip(1), None, at(2)).is_err());
}

#[test]
fn the_first_failure_of_each_minute_forgets_the_ended_minutes_once() {
    let mut ledger = MockFailureLedger::new();
    ledger
        .expect_add_failures()
        .returning(|subjects, _| Ok(vec![1; subjects.len()]));
    ledger
        .expect_forget_before()
        .with(eq(minute_of(at(1))))
        .times(1)
        .returning(|_| Ok(0));
    ledger
        .expect_forget_before()
        .with(eq(minute_of(at(61))))
        .times(1)
        .returning(|_| Ok(4));
    let throttle = FailureThrottle::new(100).with_ledger(Arc::new(ledger));
    for client in 0..5 {
        fail(&throttle, ip(client), at(1));
    }
    for client in 0..5 {
        fail(&throttle, ip(client), at(61));
    }
}

#[test]
fn an_attempt_naming_nothing_reaches_no_ledger() {
    let mut ledger = MockFailureLedger::new();
    ledger.expect_add_failures().never();
    ledger.expect_forget_before().never();
    let throttle = FailureThrottle::new(1).with_ledger(Arc::new(ledger));
    fail(&throttle, None, at(1));
}

/// A mock ledger expected to add exactly `times` failures (each counted as the
/// subject's first), and to be asked to prune any number of times.
fn ledger_adding(times: usize) -> MockFailureLedger {
    let mut ledger = MockFailureLedger::new();
    ledger
        .expect_add_failures()
        .times(times)
        .returning(|subjects, _| Ok(vec![1; subjects.len()]));
    ledger.expect_forget_before().returning(|_| Ok(0));
    ledger
}

#[test]
fn a_failure_the_store_counted_is_adopted_and_not_written_again() {
    // The store's statement added the failure: the throttle must not add it twice.
    let throttle = FailureThrottle::new(5).with_ledger(Arc::new(ledger_adding(0)));
    let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
    let shared = admission.shared_failure().expect("a ledger is configured");
    assert_eq!(shared.keys(), ["client:192.0.2.1"]);
    assert_eq!(shared.minute, minute_of(at(1)));
    // Other replicas' failures: four before this one.
    shared.counted(vec![5]);
    drop(admission);
    assert!(
        throttle.admit(ip(1), None, at(2)).is_err(),
        "the reported count (5 of 5) was adopted"
    );
}

#[test]
fn a_failure_the_store_did_not_count_is_written_by_the_throttle() {
    let throttle = FailureThrottle::new(5).with_ledger(Arc::new(ledger_adding(1)));
    let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
    // Handed to a store that failed before its refusal statement ran.
    let _shared = admission.shared_failure().expect("a ledger is configured");
    drop(admission);
}

#[test]
fn a_report_for_other_subjects_is_not_adopted() {
    let throttle = FailureThrottle::new(5).with_ledger(Arc::new(ledger_adding(1)));
    let program = ProgramId::generate();
    let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
    // Asked before the program joined: the report covers the client only.
    let shared = admission.shared_failure().expect("a ledger is configured");
    throttle
        .join_program(&mut admission, &program)
        .expect("within budget");
    shared.counted(vec![5]);
    drop(admission);
    assert!(
        throttle
            .admit(ip(1), None, at(2))
            .map(super::Admission::succeeded)
            .is_ok(),
        "the client's own count (1) stands, not the mismatched report"
    );
}

#[test]
fn without_a_ledger_there_is_nothing_to_share() {
    let throttle = FailureThrottle::new(5);
    let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
    assert!(admission.shared_failure().is_none());
    admission.succeeded();
}

/// Counts the store took before either failure settled: settling the later count
/// first must not add the earlier failure a second time (found by the end-to-end
/// brute-force test, which was throttled after 17–19 of its 20 failures).
#[test]
fn counts_reported_out_of_order_are_not_counted_twice() {
    let throttle = FailureThrottle::new(3).with_ledger(Arc::new(ledger_adding(0)));
    let mut first = throttle.admit(ip(1), None, at(1)).expect("admitted");
    let mut second = throttle.admit(ip(1), None, at(1)).expect("admitted");
    first.shared_failure().expect("shared").counted(vec![1]);
    second.shared_failure().expect("shared").counted(vec![2]);
    drop(second);
    drop(first);
    assert!(
        throttle
            .admit(ip(1), None, at(2))
            .map(super::Admission::succeeded)
            .is_ok(),
        "two failures of a budget of three: the third attempt is admitted"
    );
}
