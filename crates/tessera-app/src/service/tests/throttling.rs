//! The failed-redemption throttle as `redeem` applies it: per client address and
//! per program, counting every kind of failure and no success.

use std::net::{IpAddr, Ipv4Addr};

use mockall::predicate::eq;
use tessera_domain::{Program, ProgramId, RedemptionFailure};

use super::redeem::{expect_locate, fail_with, request, CODE, EVERY_FAILURE};
use crate::ports::MockTokenSigner;
use crate::service::test_support::*;
use crate::usecases::{RedeemRequest, RedeemUseCases, Redemption};
use crate::{AppError, AppResult, Limits};

/// A code of the fixture program's shape that the tests' stores accept.
const GOOD_CODE: &str = "zZ9yY8";

/// The `n`th client address.
fn client(n: u32) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n)))
}

/// `request`, sent from `client`.
fn from(client: Option<IpAddr>, request: RedeemRequest) -> RedeemRequest {
    RedeemRequest { client, ..request }
}

/// A harness allowing each client `budget` failures a minute.
fn harness_with_budget(budget: u32) -> Harness {
    let mut h = Harness::new();
    h.limits = Limits {
        redeem_failures_per_minute: budget,
        ..Limits::default()
    };
    h
}

/// The redemption store refuses [`CODE`] and accepts [`GOOD_CODE`].
fn refuse_code_accept_good_code(h: &mut Harness, tenant_id: &tessera_domain::TenantId) {
    let bad = code_hash_of(tenant_id, CODE);
    h.redemptions
        .expect_redeem()
        .withf(move |attempt| attempt.code_hash == bad)
        .returning(|_| Ok(Err(RedemptionFailure::TicketNotFound)));
    let good = code_hash_of(tenant_id, GOOD_CODE);
    let granted = tessera_domain::TicketId::generate();
    let tenant_id = tenant_id.clone();
    h.redemptions
        .expect_redeem()
        .withf(move |attempt| attempt.code_hash == good)
        .returning(move |_| {
            Ok(Ok(crate::model::Grant {
                tenant_id: tenant_id.clone(),
                program_id: tessera_domain::ProgramId::generate(),
                ticket_id: granted.clone(),
                redemption_id: tessera_domain::RedemptionId::generate(),
                remaining: 1,
                object_id: "iq__3ax1".to_owned(),
                group_addresses: vec![],
                payload: None,
            }))
        });
}

#[track_caller]
fn assert_refused(result: AppResult<Redemption>) {
    match result {
        Err(AppError::TooManyAttempts {
            retry_after_seconds,
        }) => assert!(
            (1..=60).contains(&retry_after_seconds),
            "retry after {retry_after_seconds} s"
        ),
        other => panic!("expected TooManyAttempts, got {other:?}"),
    }
}

/// A request naming a program no mock knows: evaluating it would fail the test.
fn unevaluable() -> RedeemRequest {
    request(&program(), CODE)
}

#[test]
fn a_client_that_spent_its_budget_is_refused_without_its_attempt_being_evaluated() {
    let program = program();
    let mut h = harness_with_budget(3);
    let located = program.clone();
    h.programs
        .expect_locate()
        .with(eq(program.id.clone()))
        .times(1)
        .returning(move |_| Ok(Some(located.clone())));
    h.redemptions
        .expect_redeem()
        .times(3)
        .returning(|_| Ok(Err(RedemptionFailure::TicketNotFound)));
    let app = h.build();
    for _ in 0..3 {
        assert_eq!(
            app.redeem(None, from(client(1), request(&program, CODE))),
            Err(AppError::InvalidCode)
        );
    }

    assert_refused(app.redeem(None, from(client(1), request(&program, GOOD_CODE))));
    assert_refused(app.redeem(Some(redeemer()), from(client(1), unevaluable())));
}

#[test]
fn a_client_that_spent_its_budget_on_unknown_programs_is_not_looked_up_again() {
    let unknown = ProgramId::generate();
    let mut h = harness_with_budget(2);
    h.programs
        .expect_locate()
        .with(eq(unknown.clone()))
        .times(1)
        .returning(|_| Ok(None));
    let app = h.build();
    let guess = || RedeemRequest {
        program_id: Some(unknown.clone()),
        ..from(client(1), unevaluable())
    };
    assert_eq!(app.redeem(None, guess()), Err(AppError::InvalidCode));
    assert_eq!(app.redeem(None, guess()), Err(AppError::InvalidCode));
    assert_refused(app.redeem(None, guess()));
}

#[test]
fn another_client_is_still_served_when_one_has_spent_its_budget() {
    let program = program();
    let mut h = harness_with_budget(2);
    expect_locate(&mut h, &program);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    for _ in 0..2 {
        assert_eq!(
            app.redeem(None, from(client(1), request(&program, CODE))),
            Err(AppError::InvalidCode)
        );
    }
    assert_refused(app.redeem(None, from(client(1), request(&program, GOOD_CODE))));

    assert!(app
        .redeem(None, from(client(2), request(&program, GOOD_CODE)))
        .is_ok());
    assert_eq!(
        app.redeem(None, from(client(2), request(&program, CODE))),
        Err(AppError::InvalidCode),
        "the other client's failures are evaluated too"
    );
}

#[test]
fn past_ten_times_the_client_budget_a_program_paces_public_attempts_and_serves_its_tenant() {
    let elsewhere = program();
    let program = program();
    let mut h = harness_with_budget(2);
    expect_locate(&mut h, &program);
    expect_locate(&mut h, &elsewhere);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    // Twenty clients failing once each: none reaches its own budget of two.
    for n in 0..20 {
        assert_eq!(
            app.redeem(None, from(client(n), request(&program, CODE))),
            Err(AppError::InvalidCode),
            "client {n}"
        );
    }
    assert!(app.throttle.program_over_budget(&program.id, now()));

    // Public attempts are not refused: they are evaluated one slow-lane slot apart.
    let started = std::time::Instant::now();
    for caller in [client(100), None, client(101)] {
        assert!(app
            .redeem(None, from(caller, request(&program, GOOD_CODE)))
            .is_ok());
    }
    let slot = std::time::Duration::from_secs(1) / crate::slow_lane::PER_SECOND;
    assert!(
        started.elapsed() >= 2 * slot,
        "paced: {:?}",
        started.elapsed()
    );
    // A key of the program's tenant goes straight through.
    assert!(app
        .redeem(Some(admin()), from(client(0), request(&program, GOOD_CODE)))
        .is_ok());
    assert!(
        app.redeem(None, from(client(100), request(&elsewhere, GOOD_CODE)))
            .is_ok(),
        "other programs are still served"
    );
}

#[test]
fn nineteen_failures_leave_a_program_with_a_client_budget_of_two_open() {
    let program = program();
    let mut h = harness_with_budget(2);
    expect_locate(&mut h, &program);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    for n in 0..19 {
        assert_eq!(
            app.redeem(None, from(client(n), request(&program, CODE))),
            Err(AppError::InvalidCode)
        );
    }
    assert!(app
        .redeem(None, from(client(100), request(&program, GOOD_CODE)))
        .is_ok());
}

#[test]
fn successes_never_count_against_the_client_or_the_program() {
    let program = program();
    let mut h = harness_with_budget(1);
    expect_locate(&mut h, &program);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    // More successes than the client's budget (1) and the program's (10).
    for _ in 0..15 {
        assert!(app
            .redeem(None, from(client(1), request(&program, GOOD_CODE)))
            .is_ok());
    }

    assert_eq!(
        app.redeem(None, from(client(1), request(&program, CODE))),
        Err(AppError::InvalidCode),
        "the budget is whole after the successes"
    );
    assert_refused(app.redeem(None, from(client(1), request(&program, GOOD_CODE))));
}

#[test]
fn attempts_from_an_unknown_address_are_throttled_only_by_program() {
    let program = program();
    let mut h = harness_with_budget(1);
    expect_locate(&mut h, &program);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    for _ in 0..3 {
        assert_eq!(
            app.redeem(None, from(None, request(&program, CODE))),
            Err(AppError::InvalidCode),
            "callers without an address do not share one client budget"
        );
    }
    assert!(app
        .redeem(None, from(client(1), request(&program, GOOD_CODE)))
        .is_ok());
}

/// Sets up `h` so that the request it returns fails in one particular way.
type FailureKind = Box<dyn Fn(&mut Harness, &Program) -> RedeemRequest>;

fn every_failure_kind() -> Vec<(String, FailureKind)> {
    let mut kinds: Vec<(String, FailureKind)> = vec![
        (
            "unknown program".to_owned(),
            Box::new(|h, program| {
                h.programs
                    .expect_locate()
                    .with(eq(program.id.clone()))
                    .returning(|_| Ok(None));
                request(program, CODE)
            }),
        ),
        (
            "malformed program id".to_owned(),
            Box::new(|_, program| RedeemRequest {
                program_id: None,
                ..request(program, CODE)
            }),
        ),
        (
            "tenant mismatch".to_owned(),
            Box::new(|h, program| {
                expect_locate(h, program);
                RedeemRequest {
                    tenant_id: Some(other_tenant()),
                    ..request(program, CODE)
                }
            }),
        ),
        (
            "badly formed code".to_owned(),
            Box::new(|h, program| {
                expect_locate(h, program);
                request(program, "not a code!")
            }),
        ),
        (
            "bad signature".to_owned(),
            Box::new(|h, program| {
                h.signer = MockTokenSigner::new();
                h.signer.expect_verify_code().returning(|_, _, _| false);
                request(program, &format!("{CODE}.Zm9yZ2Vk"))
            }),
        ),
    ];
    for reason in EVERY_FAILURE {
        kinds.push((
            format!("store refusal {reason:?}"),
            Box::new(move |h, program| {
                expect_locate(h, program);
                fail_with(h, reason);
                request(program, CODE)
            }),
        ));
    }
    kinds
}

/// Failures refused before any lookup: no code of the program could match them.
const PRE_LOOKUP: [&str; 5] = [
    "unknown program",
    "malformed program id",
    "tenant mismatch",
    "badly formed code",
    "bad signature",
];

#[test]
fn every_kind_of_failure_counts_against_the_client_and_only_guesses_against_the_program() {
    for (kind, set_up) in every_failure_kind() {
        let program = program();
        let mut h = harness_with_budget(1);
        let failing = set_up(&mut h, &program);
        let probes = h.probes.clone();
        let app = h.build();
        // Ten clients, one failure each: ten times the client budget of one.
        for n in 0..10 {
            assert_eq!(
                app.redeem(None, from(client(n), failing.clone())),
                Err(AppError::InvalidCode),
                "{kind}: client {n}"
            );
        }

        // The client's own budget is spent, whatever program it names next.
        assert_refused(app.redeem(None, from(client(0), unevaluable())));
        let guess = !PRE_LOOKUP.contains(&kind.as_str());
        assert_eq!(
            app.throttle.program_over_budget(&program.id, now()),
            guess,
            "{kind}: only what could be a code of the program spends its budget"
        );
        // Unknown programs and impossible codes take an unknown code's time.
        let probed = ["unknown program", "tenant mismatch", "badly formed code"];
        assert_eq!(
            probes.all().len(),
            if probed.contains(&kind.as_str()) {
                10
            } else {
                0
            },
            "{kind}"
        );
    }
}

#[test]
fn a_malformed_program_id_counts_against_no_program() {
    let program = program();
    let mut h = harness_with_budget(1);
    expect_locate(&mut h, &program);
    refuse_code_accept_good_code(&mut h, &tenant());
    let app = h.build();
    for n in 0..20 {
        let malformed = RedeemRequest {
            program_id: None,
            ..request(&program, CODE)
        };
        assert_eq!(
            app.redeem(None, from(client(n), malformed)),
            Err(AppError::InvalidCode)
        );
    }
    assert!(app
        .redeem(None, from(client(100), request(&program, GOOD_CODE)))
        .is_ok());
}
