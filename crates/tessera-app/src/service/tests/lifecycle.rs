//! The lifecycle use cases over mocked stores: who may call them, how refusals
//! map to errors, and that holds go through the redemption's checks.

use tessera_domain::{HoldId, HoldState, RedemptionFailure, RedemptionId, Role, RollbackReason};

use super::redeem::{expect_locate, request};
use crate::lifecycle::{Hold, HoldRefusal, RollbackRefusal};
use crate::service::test_support::*;
use crate::usecases::LifecycleUseCases;
use crate::AppError;

#[test]
fn only_redeemers_and_admins_may_hold_confirm_release_or_roll_back() {
    let tessera = untouched();
    let issuer = issuer();
    let hold = HoldId::generate();
    assert_eq!(
        tessera.confirm_hold(&issuer, &hold),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        tessera.release_hold(&issuer, &hold),
        Err(AppError::Forbidden)
    );
    assert_eq!(tessera.get_hold(&issuer, &hold), Err(AppError::Forbidden));
    assert_eq!(
        tessera.rollback(&issuer, &RedemptionId::generate(), None),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        tessera.hold(
            &issuer,
            request(&program(), "abc123"),
            tessera_domain::HoldTtl::DEFAULT
        ),
        Err(AppError::Forbidden)
    );
}

#[test]
fn a_hold_reserves_through_the_store_with_the_ttl_as_expiry() {
    let mut h = Harness::new();
    let program = program();
    expect_locate(&mut h, &program);
    let program_id = program.id.clone();
    h.lifecycle
        .expect_hold()
        .withf(|_, _, expires_at| *expires_at == now() + chrono::Duration::seconds(30))
        .returning(move |attempt, id, expires_at| {
            Ok(Ok(Hold {
                id: id.clone(),
                program_id: program_id.clone(),
                ticket_id: tessera_domain::TicketId::generate(),
                state: HoldState::Held,
                expires_at,
                created_at: attempt.now,
                remaining: 0,
            }))
        });
    let ttl = tessera_domain::HoldTtl::try_from(30).unwrap();
    let hold = h
        .build()
        .hold(&redeemer(), request(&program, "abc123"), ttl)
        .unwrap();
    assert_eq!(hold.state, HoldState::Held);
}

#[test]
fn a_refused_hold_tells_the_redeemer_why() {
    let mut h = Harness::new();
    let program = program();
    expect_locate(&mut h, &program);
    h.lifecycle
        .expect_hold()
        .returning(|_, _, _| Ok(Err(RedemptionFailure::TicketExhausted)));
    let ttl = tessera_domain::HoldTtl::DEFAULT;
    assert_eq!(
        h.build()
            .hold(&redeemer(), request(&program, "abc123"), ttl),
        Err(AppError::Redemption(RedemptionFailure::TicketExhausted))
    );
}

#[test]
fn a_key_of_another_tenant_holds_nothing() {
    let mut h = Harness::new();
    let program = program();
    expect_locate(&mut h, &program);
    let stranger = principal_of(other_tenant(), Role::Redeemer);
    assert_eq!(
        h.build().hold(
            &stranger,
            request(&program, "abc123"),
            tessera_domain::HoldTtl::DEFAULT
        ),
        Err(AppError::InvalidCode)
    );
}

#[test]
fn public_validation_failures_say_only_invalid_code() {
    let mut h = Harness::new();
    let program = program();
    expect_locate(&mut h, &program);
    h.lifecycle
        .expect_validate()
        .returning(|_| Ok(Err(RedemptionFailure::TicketExhausted)));
    assert_eq!(
        h.build().validate(None, request(&program, "abc123")),
        Err(AppError::InvalidCode)
    );
}

#[test]
fn refusals_map_to_their_errors() {
    let mut h = Harness::new();
    let caller = redeemer();
    let key = caller.key_id.clone();
    h.lifecycle
        .expect_confirm()
        .returning(|_, _, _| Ok(Err(HoldRefusal::NotActive)));
    h.lifecycle
        .expect_release()
        .returning(|_, _, _| Ok(Err(HoldRefusal::NotFound)));
    h.lifecycle
        .expect_rollback()
        .withf(move |tenant_id, _, by, reason, _| {
            *tenant_id == tenant()
                && *by == key
                && reason.as_ref().map(RollbackReason::as_str) == Some("refund")
        })
        .returning(|_, _, _, _, _| Ok(Err(RollbackRefusal::AlreadyRolledBack)));
    let tessera = h.build();
    let hold = HoldId::generate();
    assert_eq!(
        tessera.confirm_hold(&caller, &hold),
        Err(AppError::HoldNotActive)
    );
    assert_eq!(
        tessera.release_hold(&caller, &hold),
        Err(AppError::NotFound)
    );
    let reason = RollbackReason::try_from("refund".to_owned()).unwrap();
    assert_eq!(
        tessera.rollback(&caller, &RedemptionId::generate(), Some(reason)),
        Err(AppError::AlreadyRolledBack)
    );
}
