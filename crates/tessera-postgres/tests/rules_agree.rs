//! The redemption rules exist three times: as the predicates of the SQL function
//! `tessera_redeem` (migration `2026-11-25-000000_redeem_function`, called from
//! `src/stores/redemption.rs`), which decides whether a use is counted; as the
//! ordered cases of `tessera_refusal_reason` (migration
//! `refusal_in_one_statement`, called by `tessera_refuse` from
//! `src/stores/refusal.rs`), which says why it refused; and as
//! `Ticket::check_redeemable` / `Program::check_redeemable` in tessera-domain. Released migrations are
//! never edited, so the SQL cannot point back here; this table pins the two
//! together instead. For every combination of program state × window × ticket
//! state × limit × email it checks that the store's redemption succeeds exactly
//! when the domain says `Ok`, and that a refusal reports the domain's reason.
//!
//! All cases share one database (a database per case would cost a clone each);
//! every case has its own program and ticket, so no case sees another's rows.
#![allow(clippy::unwrap_used)] // fixture helpers unwrap as the tests do

mod common;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use common::{at, email, fixture, hash, limit};
use tessera_app::model::{Grant, RedemptionAttempt};
use tessera_app::ports::{ProgramStore, RedemptionStore, TicketStore};
use tessera_domain::{
    effective_limit, Program, RedemptionFailure, RedemptionLimit, TenantId, TicketId, TicketState,
    ValidityWindow,
};
use tessera_postgres::PgStore;

/// The program's `maxRedemptions` in every case.
const PROGRAM_LIMIT: i64 = 3;

#[derive(Debug, Clone, Copy)]
enum ProgramCase {
    Active,
    Suspended,
}

/// When the attempt happens, against the window [at(0), at(1000)). The open and
/// ended instants sit on the boundaries (start inclusive, end exclusive).
#[derive(Debug, Clone, Copy)]
enum Window {
    NotStarted,
    Open,
    Ended,
}

impl Window {
    fn now(self) -> DateTime<Utc> {
        match self {
            Window::NotStarted => at(-1),
            Window::Open => at(0),
            Window::Ended => at(1000),
        }
    }
}

/// The ticket's own limit (`None`: the program's) and the uses already counted.
#[derive(Debug, Clone, Copy)]
struct Uses {
    own_limit: Option<i64>,
    redemptions: u32,
}

const USES: [Uses; 6] = [
    // No limit of its own: the program's 3 applies.
    Uses {
        own_limit: None,
        redemptions: 2,
    },
    Uses {
        own_limit: None,
        redemptions: 3,
    },
    // Lower than the program's: its own 2 applies.
    Uses {
        own_limit: Some(2),
        redemptions: 1,
    },
    Uses {
        own_limit: Some(2),
        redemptions: 2,
    },
    // Higher than the program's: the program's 3 still caps it.
    Uses {
        own_limit: Some(5),
        redemptions: 2,
    },
    Uses {
        own_limit: Some(5),
        redemptions: 3,
    },
];

const BOUND_EMAIL: &str = "Ann.Lee@Example.com";

/// The ticket's bound email and the email presented with the attempt, as typed.
#[derive(Debug, Clone, Copy)]
enum EmailCase {
    /// Not bound; an email is presented anyway.
    Unbound,
    /// Bound, and the same address presented in another case.
    OtherCase,
    Wrong,
    Absent,
}

impl EmailCase {
    fn bound(self) -> Option<&'static str> {
        match self {
            EmailCase::Unbound => None,
            _ => Some(BOUND_EMAIL),
        }
    }

    fn presented(self) -> Option<&'static str> {
        match self {
            EmailCase::Unbound => Some("someone@example.com"),
            EmailCase::OtherCase => Some("  ann.lee@EXAMPLE.COM "),
            EmailCase::Wrong => Some("bob@example.com"),
            EmailCase::Absent => None,
        }
    }
}

/// The presented email as `RedemptionAttempt` documents it: trimmed and
/// lower-cased, `None` when blank (what the redeem use case passes the store).
fn attempt_email(raw: Option<&str>) -> Option<String> {
    raw.map(|email| email.trim().to_lowercase())
        .filter(|email| !email.is_empty())
}

/// A locked ticket's `locked_until` relative to the attempt (issue 16): no end (a
/// lock from before locks expired), still running, or over at this very instant
/// (`locked_until <= now` is expired in both the SQL and the domain).
#[derive(Debug, Clone, Copy)]
enum Lock {
    Forever,
    Live,
    Expired,
}

impl Lock {
    fn until(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Lock::Forever => None,
            Lock::Live => Some(now + chrono::Duration::milliseconds(1)),
            Lock::Expired => Some(now),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Case {
    program: ProgramCase,
    window: Window,
    state: TicketState,
    lock: Lock,
    uses: Uses,
    email: EmailCase,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for program in [ProgramCase::Active, ProgramCase::Suspended] {
        for window in [Window::NotStarted, Window::Open, Window::Ended] {
            for state in [
                TicketState::Active,
                TicketState::Locked,
                TicketState::Disabled,
                TicketState::Revoked,
            ] {
                let locks: &[Lock] = match state {
                    TicketState::Locked => &[Lock::Forever, Lock::Live, Lock::Expired],
                    _ => &[Lock::Forever],
                };
                for &lock in locks {
                    for uses in USES {
                        for email in [
                            EmailCase::Unbound,
                            EmailCase::OtherCase,
                            EmailCase::Wrong,
                            EmailCase::Absent,
                        ] {
                            cases.push(Case {
                                program,
                                window,
                                state,
                                lock,
                                uses,
                                email,
                            });
                        }
                    }
                }
            }
        }
    }
    cases
}

/// Writes the case's program and ticket through the store, as the service would:
/// the program is created active (a suspended one cannot issue) and suspended
/// after its ticket is issued.
fn arrange(store: &PgStore, tenant: &TenantId, case: Case, code: &str) -> (Program, TicketId) {
    let program = common::program(store, tenant, |new| {
        new.max_redemptions = limit(PROGRAM_LIMIT);
        new.window = ValidityWindow::new(at(0), at(1000)).unwrap();
    });
    let new = common::new_ticket(&program, code, |t| {
        t.state = case.state;
        t.locked_until = case.lock.until(case.window.now());
        t.max_redemptions = case.uses.own_limit.map(limit);
        t.redemptions = case.uses.redemptions;
        t.email = case.email.bound().map(email);
    });
    store.issue(&new, at(-10)).unwrap();
    let program = match case.program {
        ProgramCase::Active => program,
        ProgramCase::Suspended => store
            .update(
                &program.suspended(at(-5)),
                tessera_domain::EventType::ProgramSuspended,
            )
            .unwrap(),
    };
    (program, new.ticket.id)
}

/// A case written to the store, with the attempt and the domain's verdict on it.
struct Prepared {
    case: Case,
    ticket_id: TicketId,
    attempt: RedemptionAttempt,
    expected: Result<(), RedemptionFailure>,
    /// The ticket's uses left and counted before the attempt.
    left_before: u32,
    counted_before: u32,
}

/// Writes one case and asks the domain about it.
fn prepare(store: &PgStore, tenant: &TenantId, index: usize, case: Case) -> Prepared {
    let code = format!("code-{index}");
    let (program, ticket_id) = arrange(store, tenant, case, &code);
    let attempt = RedemptionAttempt {
        tenant_id: tenant.clone(),
        program_id: program.id.clone(),
        code_hash: hash(&code),
        email: attempt_email(case.email.presented()),
        now: case.window.now(),
        redeemer: None,
        email_lock_seconds: common::EMAIL_LOCK_SECONDS,
        shared_failure: None,
    };

    // The domain judges the rows as stored, read back through the store.
    let program = ProgramStore::get(store, tenant, &program.id).unwrap();
    let before = TicketStore::get(store, tenant, &ticket_id).unwrap();
    let expected = before
        .ticket
        .check_redeemable(&program, attempt.now, attempt.email.as_deref());
    Prepared {
        case,
        ticket_id,
        attempt,
        expected,
        left_before: before.ticket.remaining(&program),
        counted_before: before.ticket.redemptions,
    }
}

/// What the store answered: the grant, or a refusal with its reason (`None`: a
/// batch refuses without naming one).
type Answered = Result<Grant, Option<RedemptionFailure>>;

/// A description of the case when the store's answer (and the uses it counted)
/// differs from the domain's verdict.
fn disagreement(
    store: &PgStore,
    tenant: &TenantId,
    p: &Prepared,
    actual: &Answered,
) -> Option<String> {
    let after = TicketStore::get(store, tenant, &p.ticket_id).unwrap();
    let counted = i64::from(after.ticket.redemptions) - i64::from(p.counted_before);
    let agrees = match (&p.expected, actual) {
        (Ok(()), Ok(redeemed)) => {
            redeemed.ticket_id == p.ticket_id
                && redeemed.remaining + 1 == p.left_before
                && counted == 1
        }
        (Err(want), Err(got)) => got.is_none_or(|got| got == *want) && counted == 0,
        _ => false,
    };
    (!agrees).then(|| {
        let actual = actual.as_ref().map(|redeemed| redeemed.remaining);
        format!(
            "{:?}: domain {:?}, store {actual:?}, uses counted {counted}",
            p.case, p.expected
        )
    })
}

/// Runs one case through the store and the domain: the domain's verdict, and a
/// description of the case when the store's outcome differs from it.
fn judge(
    store: &PgStore,
    tenant: &TenantId,
    index: usize,
    case: Case,
) -> (Result<(), RedemptionFailure>, Option<String>) {
    let prepared = prepare(store, tenant, index, case);
    let actual = match store.redeem(&prepared.attempt) {
        Ok(outcome) => outcome.map_err(Some),
        Err(error) => panic!("{case:?}: the store failed: {error:?}"),
    };
    let disagreement = disagreement(store, tenant, &prepared, &actual);
    (prepared.expected, disagreement)
}

/// Threads sharing the fixture's pool: the cases are independent.
const WORKERS: usize = 4;

#[test]
fn the_sql_function_and_the_domain_agree_on_every_combination() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let cases = cases();
    // Four ticket states, the locked one in three lock cases.
    assert_eq!(cases.len(), 2 * 3 * (4 + 2) * USES.len() * 4);
    // Each pair of limit rows is "one use left" then "exhausted".
    let program_limit = RedemptionLimit::try_from(PROGRAM_LIMIT).unwrap();
    let left: Vec<u32> = USES
        .iter()
        .map(|uses| {
            effective_limit(uses.own_limit.map(limit), program_limit)
                .saturating_sub(uses.redemptions)
        })
        .collect();
    assert_eq!(left, [1, 0, 1, 0, 1, 0]);

    let verdicts = in_workers(&cases, |index, case| judge(&f.store, &tenant, index, case));
    assert_eq!(verdicts.len(), cases.len());

    assert_none_disagree(
        verdicts
            .iter()
            .filter_map(|(_, disagreement)| disagreement.as_ref()),
        cases.len(),
    );
    // The table reaches every outcome a stored ticket can have, so agreement
    // above is not agreement on a few easy answers.
    let outcomes: HashSet<Result<(), RedemptionFailure>> =
        verdicts.iter().map(|(expected, _)| *expected).collect();
    let every_outcome: HashSet<Result<(), RedemptionFailure>> = [
        Ok(()),
        Err(RedemptionFailure::ProgramSuspended),
        Err(RedemptionFailure::ProgramNotStarted),
        Err(RedemptionFailure::ProgramEnded),
        Err(RedemptionFailure::TicketLocked),
        Err(RedemptionFailure::TicketDisabled),
        Err(RedemptionFailure::TicketRevoked),
        Err(RedemptionFailure::TicketExhausted),
        Err(RedemptionFailure::EmailMismatch),
    ]
    .into_iter()
    .collect();
    assert_eq!(outcomes, every_outcome);
}

/// Fails with every disagreement listed, if there is any.
fn assert_none_disagree<'a>(disagreements: impl Iterator<Item = &'a String>, cases: usize) {
    let disagreements: Vec<&str> = disagreements.map(String::as_str).collect();
    assert!(
        disagreements.is_empty(),
        "{} of {cases} cases disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// `run` on every case, `WORKERS` threads at a time (the cases are independent),
/// the results in the cases' order.
fn in_workers<T: Send>(cases: &[Case], run: impl Fn(usize, Case) -> T + Sync) -> Vec<T> {
    let run = &run;
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..cases.len())
                        .step_by(WORKERS)
                        .map(|index| (index, run(index, cases[index])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// The same table through the group commit's set-based batch
/// (`tessera_redeem_batch`, migration `redemption_set_based`), which states the
/// rules once more: every case is queued first, held back by a ticket another
/// session has locked, then run in batches of 64 mixing programs, times, states
/// and emails. A batch refuses without naming a reason (the blocking path names
/// it afterwards), so here a refusal must only count nothing.
#[test]
fn the_set_based_batch_and_the_domain_agree_on_every_combination() {
    use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
    use std::sync::{Arc, Mutex};
    use tessera_postgres::{GroupCommit, GroupCommitSettings};

    let f = fixture();
    let tenant = common::tenant(&f.store);
    let cases = cases();
    let prepared = in_workers(&cases, |index, case| {
        prepare(&f.store, &tenant, index, case)
    });

    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let settings = GroupCommitSettings {
        executors: 1,
        max_batch: 64,
        queue_capacity: 1024,
    };
    let observer = Arc::new(move |_, size| seen.lock().unwrap().push(size));
    let group =
        Arc::new(GroupCommit::start(f.db.pool_with_size(1), settings, Some(observer)).unwrap());
    let store = PgStore::new(f.db.pool()).with_group_commit(group.clone());

    let blocker_program = common::program(&store, &tenant, |_| {});
    let blocker = common::issue(&store, &blocker_program, "blocker", |_| {});
    let mut other = PgConnection::establish(f.db.url()).unwrap();
    sql_query("BEGIN").execute(&mut other).unwrap();
    sql_query(format!(
        "SELECT 1 FROM tickets WHERE id = '{}' FOR UPDATE",
        blocker.as_str()
    ))
    .execute(&mut other)
    .unwrap();
    let held = store
        .redeem_later(&common::attempt(&blocker_program, "blocker", None), None)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(sizes.lock().unwrap().len() == 1 && group.queued() == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the executor never took the blocker"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pending: Vec<_> = prepared
        .iter()
        .map(|p| store.redeem_later(&p.attempt, None).unwrap())
        .collect();
    assert_eq!(group.queued(), cases.len());
    sql_query("ROLLBACK").execute(&mut other).unwrap();
    assert!(common::block_on(held).unwrap().is_some());

    let disagreements: Vec<String> = prepared
        .iter()
        .zip(pending)
        .filter_map(|(p, pending)| {
            let answered = match common::block_on(pending) {
                Ok(grant) => grant.ok_or(None),
                Err(error) => panic!("{:?}: the batch failed: {error:?}", p.case),
            };
            disagreement(&f.store, &tenant, p, &answered)
        })
        .collect();
    assert_none_disagree(disagreements.iter(), cases.len());
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes[1..].iter().sum::<usize>(), cases.len());
    assert!(sizes[1..9].iter().all(|size| *size == 64), "{sizes:?}");
}

/// The per-redeemer rule (`Ticket::check_redeemer`, after `check_redeemable`)
/// and `tessera_redeem`'s claim agree on every combination of share, presented
/// redeemer, that redeemer's past uses, and the ticket's other rules.
#[test]
fn the_sql_function_and_the_domain_agree_on_per_redeemer_limits() {
    use diesel::sql_types::{BigInt, Bytea, Text};
    use diesel::{sql_query, RunQueryDsl};

    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.max_redemptions = limit(PROGRAM_LIMIT);
        new.window = ValidityWindow::new(at(-100), at(100)).unwrap();
    });
    let mut outcomes = HashSet::new();
    let mut index = 0;
    for share in [None, Some(1), Some(2)] {
        for presented in [false, true] {
            for past_uses in [0i64, 1, 2] {
                for (exhausted, bound) in [(false, false), (true, false), (false, true)] {
                    index += 1;
                    let code = format!("share-{index}");
                    let new = common::new_ticket(&program, &code, |t| {
                        t.per_redeemer_limit = share.map(limit);
                        t.redemptions = if exhausted { PROGRAM_LIMIT as u32 } else { 0 };
                        t.email = bound.then(|| email("ann@example.com"));
                    });
                    f.store.issue(&new, at(-10)).unwrap();
                    let key = hash(&format!("redeemer-{index}"));
                    if share.is_some() && past_uses > 0 {
                        let mut conn = f.db.pool().get().unwrap();
                        sql_query(
                            "INSERT INTO redeemer_uses (tenant_id, ticket_id, redeemer_key, uses) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind::<Text, _>(tenant.as_str())
                        .bind::<Text, _>(new.ticket.id.as_str())
                        .bind::<Bytea, _>(&key.0[..])
                        .bind::<BigInt, _>(past_uses)
                        .execute(&mut conn)
                        .unwrap();
                    }
                    let attempt = RedemptionAttempt {
                        tenant_id: tenant.clone(),
                        program_id: program.id.clone(),
                        code_hash: hash(&code),
                        email: None,
                        now: at(0),
                        redeemer: presented.then_some(key),
                        email_lock_seconds: common::EMAIL_LOCK_SECONDS,
                        shared_failure: None,
                    };
                    let stored = ProgramStore::get(&f.store, &tenant, &program.id).unwrap();
                    let before = TicketStore::get(&f.store, &tenant, &new.ticket.id).unwrap();
                    let uses =
                        presented.then_some(if share.is_some() { past_uses as u32 } else { 0 });
                    let expected = before
                        .ticket
                        .check_redeemable(&stored, attempt.now, None)
                        .and_then(|()| before.ticket.check_redeemer(uses));
                    let actual = f.store.redeem(&attempt).unwrap().map(|_| ());
                    assert_eq!(
                        actual, expected,
                        "share {share:?}, presented {presented}, past {past_uses}, exhausted {exhausted}, bound {bound}"
                    );
                    outcomes.insert(expected);
                }
            }
        }
    }
    for outcome in [
        Ok(()),
        Err(RedemptionFailure::RedeemerRequired),
        Err(RedemptionFailure::RedeemerLimitReached),
        Err(RedemptionFailure::TicketExhausted),
        Err(RedemptionFailure::EmailMismatch),
    ] {
        assert!(outcomes.contains(&outcome), "{outcome:?} never reached");
    }
}
