//! The queued anonymous redemption (`QueuedUseCases`): answered from the
//! store's future on success, handed to the blocking pool for everything that
//! needs the database, and counted exactly once whichever way it goes.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tessera_domain::{Program, RedemptionFailure};

use super::redeem::{expect_locate, redeemed, request, succeed, CODE};
use crate::model::{CallerKey, RedemptionAttempt};
use crate::service::test_support::*;
use crate::usecases::{QueuedRedemption, QueuedUseCases, RedeemRequest, RedeemUseCases};
use crate::{AppError, Limits, Tessera};

/// Polls `future` to its end on this thread (the store's futures in these tests
/// are ready at once; a pending one is woken by its sender).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

pub(super) fn queued(tessera: &Arc<Tessera>, request: &RedeemRequest) -> QueuedRedemption {
    block_on(tessera.clone().redeem_queued(None, request.clone()))
}

pub(super) fn from_client(program: &Program) -> RedeemRequest {
    RedeemRequest {
        client: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
        ..request(program, CODE)
    }
}

/// A harness whose clients may fail `budget` times a minute.
pub(super) fn with_budget(budget: u32) -> Harness {
    let mut h = Harness::new();
    h.limits = Limits {
        redeem_failures_per_minute: budget,
        ..h.limits
    };
    h
}

/// The store's queue answers every attempt with `answer` and records it, with
/// the caller's key the statement is to check.
pub(super) fn queue_answers(
    h: &mut Harness,
    granted: bool,
) -> Recorder<(RedemptionAttempt, Option<CallerKey>)> {
    let seen = Recorder::new();
    let record = seen.clone();
    let grant = redeemed(&program());
    h.redemptions
        .expect_redeem_later()
        .returning(move |attempt, caller_key| {
            record.record((attempt.clone(), caller_key));
            let answer = granted.then(|| grant.clone());
            Some(Box::pin(async move { Ok(answer) }))
        });
    seen
}

/// The first redemption of a program runs on the blocking pool (its facts are not
/// cached yet): this one warms the cache with a success, as the first caller would.
pub(super) fn warmed(h: Harness, program: &Program) -> Arc<Tessera> {
    let tessera = Arc::new(h.build());
    let first = request(program, CODE);
    match queued(&tessera, &first) {
        QueuedRedemption::Unqueued(None, back) => assert_eq!(back, first),
        other => panic!("an uncached program must go to the blocking pool, got {other:?}"),
    }
    tessera.redeem(None, first).expect("the warm-up redemption");
    tessera
}

#[test]
fn a_queued_success_is_answered_from_the_store_future_and_signed() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    succeed(&mut h);
    let attempts = queue_answers(&mut h, true);
    let tessera = warmed(h, &program);
    match queued(&tessera, &from_client(&program)) {
        QueuedRedemption::Done(Ok(redemption)) => {
            assert_eq!(redemption.access_token, access_token());
        }
        other => panic!("expected a redemption, got {other:?}"),
    }
    let attempts = attempts.all();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0.program_id, program.id);
    assert_eq!(
        attempts[0].0.code_hash,
        code_hash_of(&program.tenant_id, CODE)
    );
    assert_eq!(
        attempts[0].1, None,
        "an anonymous attempt has no key to check"
    );
}

#[test]
fn a_refused_queued_attempt_is_finished_on_the_blocking_path_and_counted_once() {
    let program = program();
    let mut h = with_budget(2);
    expect_locate(&mut h, &program);
    succeed(&mut h);
    queue_answers(&mut h, false);
    let classified = Recorder::new();
    let record = classified.clone();
    h.redemptions
        .expect_classify_refused()
        .returning(move |attempt| {
            record.record(attempt.clone());
            Ok(Err(RedemptionFailure::TicketExhausted))
        });
    let tessera = warmed(h, &program);
    let attempt = from_client(&program);
    for _ in 0..2 {
        let QueuedRedemption::Refused(None, back) = queued(&tessera, &attempt) else {
            panic!("a refusal must be handed back to finish");
        };
        assert_eq!(back, attempt);
        assert_eq!(
            tessera.redeem_refused(None, back),
            Err(AppError::InvalidCode)
        );
    }
    assert_eq!(classified.all().len(), 2);
    // Two failures, each counted once: the budget of two is spent now (counted
    // twice per attempt, the second attempt would have been refused unevaluated).
    match queued(&tessera, &attempt) {
        QueuedRedemption::Done(Err(AppError::TooManyAttempts { .. })) => {}
        other => panic!("expected the client's budget spent, got {other:?}"),
    }
}

#[test]
fn an_unknown_program_takes_the_queued_probe_then_the_probe_rest() {
    let program = program();
    let mut h = with_budget(3);
    h.programs.expect_locate().returning(|_| Ok(None));
    let queued_probes = Recorder::new();
    let record = queued_probes.clone();
    h.redemptions
        .expect_probe_later()
        .returning(move |program, _| {
            record.record(program.clone());
            Some(Box::pin(async { Ok(()) }))
        });
    let rest = Recorder::new();
    let record = rest.clone();
    h.redemptions
        .expect_probe_refused()
        .returning(move |program, _, _| {
            record.record(program.clone());
            Ok(())
        });
    let probes = h.probes.clone();
    let tessera = Arc::new(h.build());
    let attempt = from_client(&program);
    // Not cached: the blocking path looks it up (and probes, counting a failure).
    assert!(matches!(
        queued(&tessera, &attempt),
        QueuedRedemption::Unqueued(..)
    ));
    assert_eq!(
        tessera.redeem(None, attempt.clone()),
        Err(AppError::InvalidCode)
    );
    assert_eq!(probes.all(), std::slice::from_ref(&program.id));
    // Cached as unknown: the probe's statement through the queue, then its rest.
    let QueuedRedemption::Refused(None, back) = queued(&tessera, &attempt) else {
        panic!("an unknown program must be refused like an unknown code");
    };
    assert_eq!(
        tessera.redeem_refused(None, back),
        Err(AppError::InvalidCode)
    );
    assert_eq!(queued_probes.all(), std::slice::from_ref(&program.id));
    assert_eq!(rest.all(), std::slice::from_ref(&program.id));
    assert_eq!(
        probes.all().len(),
        1,
        "no whole probe on the finishing path"
    );
    // Two failures counted (one per attempt): one left of three.
    assert!(matches!(
        queued(&tessera, &attempt),
        QueuedRedemption::Refused(..)
    ));
}

#[test]
fn a_store_without_a_queue_gets_every_attempt_back_with_nothing_counted() {
    let program = program();
    let mut h = with_budget(1);
    expect_locate(&mut h, &program);
    succeed(&mut h);
    h.redemptions.expect_redeem_later().returning(|_, _| None);
    let tessera = warmed(h, &program);
    let attempt = from_client(&program);
    for _ in 0..5 {
        match queued(&tessera, &attempt) {
            QueuedRedemption::Unqueued(None, back) => assert_eq!(back, attempt),
            other => panic!("expected the attempt back, got {other:?}"),
        }
    }
    // A budget of one, untouched by five hand-backs.
    assert!(tessera.redeem(None, attempt).is_ok());
}

#[test]
fn attempts_that_would_count_through_the_ledger_or_wait_go_to_the_blocking_pool() {
    let program = program();
    let mut h = with_budget(1);
    expect_locate(&mut h, &program);
    succeed(&mut h);
    h.signer.expect_verify_code().returning(|_, _, _| false);
    let tessera = warmed(h, &program);
    // No program named, and a forged signature: failures whose count may be a
    // round trip to the shared ledger. Neither is counted here.
    let unnamed = RedeemRequest {
        program_id: None,
        ..from_client(&program)
    };
    let forged = RedeemRequest {
        code: tessera_domain::PresentedCode::new(format!("{CODE}.forged")),
        ..from_client(&program)
    };
    for attempt in [unnamed, forged] {
        for _ in 0..3 {
            assert!(matches!(
                queued(&tessera, &attempt),
                QueuedRedemption::Unqueued(..)
            ));
        }
    }
    assert!(tessera.redeem(None, from_client(&program)).is_ok());
}

#[test]
fn a_queued_attempt_dropped_while_it_waits_counts_nothing() {
    let program = program();
    let mut h = with_budget(1);
    expect_locate(&mut h, &program);
    succeed(&mut h);
    // A batch that never answers: the caller (its client gone) drops the future.
    h.redemptions
        .expect_redeem_later()
        .returning(|_, _| Some(Box::pin(std::future::pending())));
    let tessera = warmed(h, &program);
    let attempt = from_client(&program);
    for _ in 0..3 {
        let mut waiting = tessera.clone().redeem_queued(None, attempt.clone());
        let waker = Waker::noop();
        let polled = waiting.as_mut().poll(&mut Context::from_waker(waker));
        assert!(polled.is_pending(), "the batch has not answered");
        drop(waiting);
    }
    // A budget of one, untouched by three abandoned attempts.
    assert!(tessera.redeem(None, attempt).is_ok());
}
