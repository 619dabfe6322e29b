use mockall::predicate::eq;
use tessera_domain::{
    Alphabet, Payload, PresentedCode, Program, ProgramId, RedemptionFailure, Role, TicketId,
    TicketLength,
};

use crate::model::{AccessToken, Grant, RedemptionAttempt};
use crate::ports::{MockTokenSigner, StoreError};
use crate::service::test_support::*;
use crate::usecases::{Principal, RedeemRequest, RedeemUseCases, Redemption};
use crate::AppError;

pub(super) const CODE: &str = "aB3dE6";

pub(super) const EVERY_FAILURE: [RedemptionFailure; 9] = [
    RedemptionFailure::TicketNotFound,
    RedemptionFailure::TicketExhausted,
    RedemptionFailure::TicketRevoked,
    RedemptionFailure::TicketDisabled,
    RedemptionFailure::TicketLocked,
    RedemptionFailure::EmailMismatch,
    RedemptionFailure::ProgramSuspended,
    RedemptionFailure::ProgramNotStarted,
    RedemptionFailure::ProgramEnded,
];

pub(super) fn request(program: &Program, code: &str) -> RedeemRequest {
    RedeemRequest {
        program_id: Some(program.id.clone()),
        tenant_id: None,
        code: PresentedCode::new(code),
        email: None,
        redeemer_id: None,
        client: None,
    }
}

/// Programs locates `program` by its id, any number of times.
pub(super) fn expect_locate(h: &mut Harness, program: &Program) {
    let located = program.clone();
    h.programs
        .expect_locate()
        .with(eq(program.id.clone()))
        .returning(move |_| Ok(Some(located.clone())));
}

/// The redemption store answers every attempt with `reason` and records it.
pub(super) fn fail_with(h: &mut Harness, reason: RedemptionFailure) -> Recorder<RedemptionAttempt> {
    let seen = Recorder::new();
    let record = seen.clone();
    h.redemptions.expect_redeem().returning(move |attempt| {
        record.record(attempt.clone());
        Ok(Err(reason))
    });
    seen
}

pub(super) fn redeemed(program: &Program) -> Grant {
    Grant {
        tenant_id: program.tenant_id.clone(),
        program_id: program.id.clone(),
        ticket_id: TicketId::generate(),
        redemption_id: tessera_domain::RedemptionId::generate(),
        remaining: 99,
        object_id: "iq__3ax1".to_owned(),
        group_addresses: vec!["0x96bb".to_owned()],
        payload: Some(Payload::from_json_text("{\"seat\":\"A1\"}".to_owned()).expect("payload")),
    }
}

/// The redemption store accepts every attempt and records it.
pub(super) fn succeed(h: &mut Harness) -> Recorder<RedemptionAttempt> {
    let seen = Recorder::new();
    let record = seen.clone();
    let granted = redeemed(&program());
    h.redemptions.expect_redeem().returning(move |attempt| {
        record.record(attempt.clone());
        Ok(Ok(granted.clone()))
    });
    seen
}

pub(super) fn every_caller() -> Vec<Option<Principal>> {
    vec![
        None,
        Some(admin()),
        Some(issuer()),
        Some(redeemer()),
        Some(principal_of(other_tenant(), Role::Admin)),
    ]
}

#[test]
fn an_unknown_program_is_an_invalid_code_for_every_caller() {
    for caller in every_caller() {
        let mut h = Harness::new();
        h.programs.expect_locate().times(1).returning(|_| Ok(None));
        let unknown = RedeemRequest {
            program_id: Some(ProgramId::generate()),
            tenant_id: None,
            code: PresentedCode::new(CODE),
            email: None,
            redeemer_id: None,
            client: None,
        };
        assert_eq!(
            h.build().redeem(caller.clone(), unknown),
            Err(AppError::InvalidCode),
            "{caller:?}"
        );
    }
}

#[test]
fn a_tenant_id_that_does_not_hold_the_program_is_an_invalid_code_for_every_caller() {
    let program = program();
    for caller in every_caller() {
        let mut h = Harness::new();
        expect_locate(&mut h, &program);
        let named_elsewhere = RedeemRequest {
            tenant_id: Some(other_tenant()),
            ..request(&program, CODE)
        };
        assert_eq!(
            h.build().redeem(caller.clone(), named_elsewhere),
            Err(AppError::InvalidCode),
            "{caller:?}"
        );
    }
}

#[test]
fn a_tenant_id_that_holds_the_program_is_accepted() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let seen = succeed(&mut h);
    let named = RedeemRequest {
        tenant_id: Some(tenant()),
        ..request(&program, CODE)
    };
    assert!(h.build().redeem(None, named).is_ok());
    assert_eq!(seen.all().len(), 1);
}

#[test]
fn a_public_caller_learns_only_invalid_code_whatever_the_reason() {
    let program = program();
    for reason in EVERY_FAILURE {
        let mut h = Harness::new();
        expect_locate(&mut h, &program);
        fail_with(&mut h, reason);
        assert_eq!(
            h.build().redeem(None, request(&program, CODE)),
            Err(AppError::InvalidCode),
            "{reason:?}"
        );
    }
}

#[test]
fn redeemers_and_admins_of_the_programs_tenant_learn_the_reason() {
    let program = program();
    for caller in [redeemer(), admin()] {
        for reason in EVERY_FAILURE {
            let mut h = Harness::new();
            expect_locate(&mut h, &program);
            fail_with(&mut h, reason);
            assert_eq!(
                h.build()
                    .redeem(Some(caller.clone()), request(&program, CODE)),
                Err(AppError::Redemption(reason)),
                "{:?} {reason:?}",
                caller.role
            );
        }
    }
}

#[test]
fn a_key_of_another_tenant_learns_only_invalid_code() {
    let program = program();
    for role in [Role::Redeemer, Role::Admin] {
        let mut h = Harness::new();
        expect_locate(&mut h, &program);
        fail_with(&mut h, RedemptionFailure::TicketExhausted);
        assert_eq!(
            h.build().redeem(
                Some(principal_of(other_tenant(), role)),
                request(&program, CODE)
            ),
            Err(AppError::InvalidCode),
            "{role:?}"
        );
    }
}

#[test]
fn an_issuer_of_the_tenant_learns_only_invalid_code_because_its_role_lacks_details() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    fail_with(&mut h, RedemptionFailure::EmailMismatch);
    assert_eq!(
        h.build().redeem(Some(issuer()), request(&program, CODE)),
        Err(AppError::InvalidCode)
    );
}

#[test]
fn a_code_that_cannot_belong_to_the_program_fails_without_a_redemption_attempt() {
    let mut program = program();
    program.alphabet = Alphabet::Numeric;
    for (caller, expected) in [
        (None, AppError::InvalidCode),
        (
            Some(redeemer()),
            AppError::Redemption(RedemptionFailure::TicketNotFound),
        ),
    ] {
        // Any 4..65 of A–Z a–z 0–9 may be a chosen code, so only other shapes are
        // refused unlooked-up.
        let too_long = "1".repeat(66);
        for impossible in ["123", "12_456", "", "12 3", "ÄÖÜ1", too_long.as_str()] {
            let mut h = Harness::new();
            expect_locate(&mut h, &program);
            // No `expect_redeem`: reaching the store would fail the test.
            assert_eq!(
                h.build()
                    .redeem(caller.clone(), request(&program, impossible)),
                Err(expected.clone()),
                "{impossible:?}"
            );
        }
    }
}

#[test]
fn a_humane_code_is_hashed_in_canonical_form() {
    let mut program = program();
    program.alphabet = Alphabet::Humane;
    program.ticket_length = TicketLength::try_from(6).expect("valid length");
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let seen = succeed(&mut h);
    h.build()
        .redeem(None, request(&program, "ab-c1 o-l"))
        .expect("redeemed");
    let [attempt] = seen.all().try_into().expect("one attempt");
    assert_eq!(attempt.code_hash, code_hash_of(&tenant(), "ABC101"));
}

#[test]
fn the_attempt_carries_the_programs_tenant_its_id_the_code_hash_and_now() {
    let program = program_in(other_tenant());
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let seen = succeed(&mut h);
    h.build()
        .redeem(None, request(&program, CODE))
        .expect("redeemed");
    let [attempt] = seen.all().try_into().expect("one attempt");
    assert_eq!(
        attempt,
        RedemptionAttempt {
            tenant_id: other_tenant(),
            program_id: program.id.clone(),
            code_hash: code_hash_of(&other_tenant(), CODE),
            email: None,
            now: now(),
            redeemer: None,
            email_lock_seconds: 900,
            shared_failure: None,
        }
    );
}

#[test]
fn the_presented_email_is_trimmed_and_lower_cased_and_blank_means_none() {
    let program = program();
    for (presented, expected) in [
        (Some(" Ann@Example.COM "), Some("ann@example.com")),
        (Some("bob@example.com"), Some("bob@example.com")),
        (Some(""), None),
        (Some("   "), None),
        (None, None),
    ] {
        let mut h = Harness::new();
        expect_locate(&mut h, &program);
        let seen = succeed(&mut h);
        let with_email = RedeemRequest {
            email: presented.map(str::to_owned),
            ..request(&program, CODE)
        };
        h.build().redeem(None, with_email).expect("redeemed");
        let [attempt] = seen.all().try_into().expect("one attempt");
        assert_eq!(attempt.email.as_deref(), expected, "{presented:?}");
    }
}

#[test]
fn program_facts_are_located_once_for_many_redemptions() {
    let program = program();
    let mut h = Harness::new();
    let located = program.clone();
    h.programs
        .expect_locate()
        .times(1)
        .returning(move |_| Ok(Some(located.clone())));
    let seen = succeed(&mut h);
    let app = h.build();
    app.redeem(None, request(&program, CODE))
        .expect("first redemption");
    app.redeem(None, request(&program, "zZ9yY8"))
        .expect("second redemption");
    assert_eq!(seen.all().len(), 2);
}

#[test]
fn a_success_tells_what_the_ticket_grants() {
    let program = program();
    let granted = redeemed(&program);
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let returned = granted.clone();
    h.redemptions
        .expect_redeem()
        .times(1)
        .returning(move |_| Ok(Ok(returned.clone())));
    assert_eq!(
        h.build().redeem(Some(redeemer()), request(&program, CODE)),
        Ok(Redemption {
            grant: granted,
            access_token: access_token(),
        })
    );
}

#[test]
fn an_unreachable_database_is_unavailable_not_an_invalid_code() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    h.redemptions
        .expect_redeem()
        .returning(|_| Err(StoreError::Unavailable("down".to_owned())));
    assert_eq!(
        h.build().redeem(None, request(&program, CODE)),
        Err(AppError::Unavailable)
    );

    let mut h = Harness::new();
    h.programs
        .expect_locate()
        .returning(|_| Err(StoreError::Unavailable("down".to_owned())));
    assert_eq!(
        h.build().redeem(None, request(&program, CODE)),
        Err(AppError::Unavailable)
    );
}

/// A signature as a client presents it after the `.` of a signed code.
const SIGNATURE: &str = "c2lnbmF0dXJlLW9mLXRoZS1jb2Rl";

/// Replaces the harness's signer by one that expects exactly one `verify_code`,
/// answering `valid` and recording what it was asked, and hands out
/// [`access_token`] for any success.
fn expect_one_verification(h: &mut Harness, valid: bool) -> Recorder<(ProgramId, String, String)> {
    let seen = Recorder::new();
    let record = seen.clone();
    h.signer = MockTokenSigner::new();
    h.signer
        .expect_verify_code()
        .times(1)
        .returning(move |program, code, signature| {
            record.record((program.clone(), code.to_owned(), signature.to_owned()));
            valid
        });
    h.signer
        .expect_access_token()
        .returning(|_, _| access_token());
    seen
}

#[test]
fn a_signed_code_is_verified_with_the_program_id_and_the_code_part_then_redeemed_by_that_parts_hash(
) {
    let program = program();
    let mut h = Harness::new();
    let verified = expect_one_verification(&mut h, true);
    expect_locate(&mut h, &program);
    let seen = succeed(&mut h);
    h.build()
        .redeem(None, request(&program, &format!("{CODE}.{SIGNATURE}")))
        .expect("redeemed");

    assert_eq!(
        verified.all(),
        vec![(program.id.clone(), CODE.to_owned(), SIGNATURE.to_owned())]
    );
    let [attempt] = seen.all().try_into().expect("one attempt");
    assert_eq!(attempt.code_hash, code_hash_of(&tenant(), CODE));
}

#[test]
fn a_bad_signature_is_an_invalid_code_for_every_caller_before_any_lookup() {
    let program = program();
    for caller in every_caller() {
        let mut h = Harness::new();
        expect_one_verification(&mut h, false);
        // No `expect_locate` and no `expect_redeem`: a lookup would fail the test.
        assert_eq!(
            h.build().redeem(
                caller.clone(),
                request(&program, &format!("{CODE}.{SIGNATURE}"))
            ),
            Err(AppError::InvalidCode),
            "{caller:?}"
        );
    }
}

#[test]
fn a_plain_code_is_never_sent_to_the_signer_for_verification() {
    let program = program();
    let mut h = Harness::new();
    h.signer = MockTokenSigner::new();
    h.signer
        .expect_access_token()
        .times(1)
        .returning(|_, _| access_token());
    expect_locate(&mut h, &program);
    succeed(&mut h);
    assert!(h.build().redeem(None, request(&program, CODE)).is_ok());
}

#[test]
fn a_success_hands_out_the_signers_token_for_the_ticket_tenant_program_object_groups_and_now() {
    let program = program_in(other_tenant());
    let granted = redeemed(&program);
    let token = AccessToken::new("a-token-for-this-redemption".to_owned(), 900);
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let returned = granted.clone();
    h.redemptions
        .expect_redeem()
        .times(1)
        .returning(move |_| Ok(Ok(returned.clone())));
    let claims = Recorder::new();
    let record = claims.clone();
    let handed_out = token.clone();
    h.signer = MockTokenSigner::new();
    h.signer
        .expect_access_token()
        .times(1)
        .returning(move |seen: &Grant, issued_at| {
            record.record((seen.clone(), issued_at));
            handed_out.clone()
        });
    let redemption = h
        .build()
        .redeem(Some(issuer()), request(&program, CODE))
        .expect("redeemed");

    assert_eq!(claims.all(), vec![(granted.clone(), now())]);
    assert_eq!(redemption.access_token, token);
}

#[test]
fn a_failed_redemption_hands_out_no_token() {
    let program = program();
    for reason in EVERY_FAILURE {
        let mut h = Harness::new();
        h.signer = MockTokenSigner::new();
        expect_locate(&mut h, &program);
        fail_with(&mut h, reason);
        assert_eq!(
            h.build().redeem(Some(redeemer()), request(&program, CODE)),
            Err(AppError::Redemption(reason))
        );
    }
}
