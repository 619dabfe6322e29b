//! The queued requests that present a key (`QueuedUseCases`): the key resolved
//! from the access store's memory, a redemption with a caller (detailed
//! refusals), and the standalone use.

use std::sync::Arc;

use mockall::predicate::eq;
use tessera_domain::{PresentedApiKey, PresentedTicket, RedemptionFailure, Role, StandaloneToken};

use super::queued::{block_on, from_client, queue_answers, warmed};
use super::redeem::{expect_locate, succeed};
use crate::model::{ApiKey, CallerKey, StandaloneUse, UsesLeft};
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::usecases::{Principal, QueuedRedemption, QueuedUse, QueuedUseCases};
use crate::AppError;

fn stored_key(role: Role) -> ApiKey {
    ApiKey {
        id: tessera_domain::ApiKeyId::generate(),
        tenant_id: tenant(),
        name: tessera_domain::Label::try_from("k".to_owned()).expect("label"),
        role,
        created_at: now(),
    }
}

/// The access store's memory answers `answer` (or has no cache: `None`).
fn memory_answers(answer: Option<Result<Option<ApiKey>, StoreError>>) -> Arc<crate::Tessera> {
    let mut h = Harness::new();
    h.access
        .expect_find_api_key_in_memory()
        .with(eq(api_key_hash_of("tsk_presented")))
        .times(1)
        .returning(move |_| {
            let answer = answer.clone()?;
            Some(Box::pin(async move { answer }))
        });
    Arc::new(h.build())
}

fn in_memory(tessera: &crate::Tessera) -> Option<Principal> {
    block_on(tessera.authenticate_in_memory(&PresentedApiKey::new("tsk_presented")))
}

#[test]
fn a_key_the_store_vouches_for_from_memory_is_the_caller() {
    let key = stored_key(Role::Redeemer);
    let tessera = memory_answers(Some(Ok(Some(key.clone()))));
    assert_eq!(
        in_memory(&tessera),
        Some(Principal {
            tenant_id: key.tenant_id,
            key_id: key.id,
            role: Role::Redeemer,
        })
    );
}

#[test]
fn a_key_memory_cannot_vouch_for_is_left_to_the_blocking_lookup() {
    for answer in [
        None,
        Some(Ok(None)),
        Some(Err(StoreError::Unavailable("down".to_owned()))),
    ] {
        let tessera = memory_answers(answer.clone());
        assert_eq!(in_memory(&tessera), None, "{answer:?}");
    }
}

#[test]
fn a_detailed_caller_s_queued_refusal_keeps_the_caller_for_its_reason() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    succeed(&mut h);
    queue_answers(&mut h, false);
    h.redemptions
        .expect_classify_refused()
        .times(1)
        .returning(|_| Ok(Err(RedemptionFailure::TicketExhausted)));
    let tessera = warmed(h, &program);
    let attempt = from_client(&program);
    let admin = admin();
    let QueuedRedemption::Refused(caller, back) = block_on(
        tessera
            .clone()
            .redeem_queued(Some(admin.clone()), attempt.clone()),
    ) else {
        panic!("a refusal must be handed back to finish");
    };
    assert_eq!((caller.clone(), &back), (Some(admin), &attempt));
    assert_eq!(
        tessera.redeem_refused(caller, back),
        Err(AppError::Redemption(RedemptionFailure::TicketExhausted)),
        "the tenant's admin sees the reason, as on the blocking path"
    );
}

#[test]
fn a_keyed_queued_success_is_answered_from_the_store_future() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    succeed(&mut h);
    let attempts = queue_answers(&mut h, true);
    let tessera = warmed(h, &program);
    let callers = [admin(), principal_of(other_tenant(), Role::Admin)];
    for caller in &callers {
        match block_on(
            tessera
                .clone()
                .redeem_queued(Some(caller.clone()), from_client(&program)),
        ) {
            QueuedRedemption::Done(Ok(redemption)) => {
                assert_eq!(redemption.access_token, access_token());
            }
            other => panic!("expected a redemption, got {other:?}"),
        }
    }
    // Each statement checks the key the caller was vouched for by.
    let checked: Vec<_> = attempts.all().into_iter().map(|(_, key)| key).collect();
    let expected: Vec<_> = callers
        .iter()
        .map(|caller| {
            Some(CallerKey {
                tenant_id: caller.tenant_id.clone(),
                key_id: caller.key_id.clone(),
            })
        })
        .collect();
    assert_eq!(checked, expected);
}

fn used() -> StandaloneUse {
    StandaloneUse {
        uses_left: UsesLeft::Left(2),
        payload: None,
    }
}

fn use_queued(tessera: &Arc<crate::Tessera>, caller: Principal, token: &str) -> QueuedUse {
    block_on(
        tessera
            .clone()
            .use_standalone_queued(caller, PresentedTicket::new(token)),
    )
}

#[test]
fn a_queued_standalone_use_is_answered_from_the_store_future() {
    let token = StandaloneToken::generate();
    let caller = redeemer();
    for (answer, expected) in [
        (Ok(Some(used())), Ok(used())),
        (Ok(None), Err(AppError::NotFound)),
        (
            Err(StoreError::Unavailable("batch lost".to_owned())),
            Err(AppError::Unavailable),
        ),
    ] {
        let mut h = Harness::new();
        h.standalone
            .expect_use_ticket_later()
            .with(
                eq(tenant()),
                eq(standalone_hash_of(&tenant(), token.expose_secret())),
                eq(now()),
                eq(caller.key_id.clone()),
            )
            .times(1)
            .returning(move |_, _, _, _| {
                let answer = answer.clone();
                Some(Box::pin(async move { answer }))
            });
        let tessera = Arc::new(h.build());
        match use_queued(&tessera, caller.clone(), token.expose_secret()) {
            QueuedUse::Done(outcome) => assert_eq!(outcome, expected),
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

#[test]
fn a_queued_use_refused_before_the_store_never_reaches_it() {
    let tessera = Arc::new(untouched());
    let token = StandaloneToken::generate();
    match use_queued(&tessera, issuer(), token.expose_secret()) {
        QueuedUse::Done(Err(AppError::Forbidden)) => {}
        other => panic!("issuers may not use standalone tickets, got {other:?}"),
    }
    match use_queued(&tessera, redeemer(), "short") {
        QueuedUse::Done(Err(AppError::NotFound)) => {}
        other => panic!("a malformed token is not found, got {other:?}"),
    }
}

#[test]
fn a_store_without_a_queue_gets_the_use_back() {
    let mut h = Harness::new();
    h.standalone
        .expect_use_ticket_later()
        .times(1)
        .returning(|_, _, _, _| None);
    let tessera = Arc::new(h.build());
    let token = StandaloneToken::generate();
    let redeemer = redeemer();
    match use_queued(&tessera, redeemer.clone(), token.expose_secret()) {
        QueuedUse::Unqueued(caller, presented) => {
            assert_eq!(caller, redeemer);
            assert_eq!(presented.expose_secret(), token.expose_secret());
        }
        other => panic!("expected the use back, got {other:?}"),
    }
}
