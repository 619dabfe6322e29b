use chrono::Duration;
use mockall::predicate::eq;
use tessera_domain::{
    Email, MaxTickets, PageRequest, Payload, Program, ProgramId, ProgramState, RedemptionLimit,
    Role, SignedCode, Subject, TicketId, TicketLength, TicketState, UrlPrefix,
};

use crate::model::{NewTicket, Page, TicketView};
use crate::ports::{MockTokenSigner, StoreError};
use crate::service::test_support::*;
use crate::service::{SECRET_ATTEMPTS, UPDATE_ATTEMPTS};
use crate::usecases::{IssueRequest, TicketUseCases};
use crate::AppError;

fn limit(n: i64) -> RedemptionLimit {
    RedemptionLimit::try_from(n).expect("valid limit")
}

/// Programs answers `get` of `program`, scoped to the caller's tenant.
fn expect_program(h: &mut Harness, program: &Program) {
    let returned = program.clone();
    h.programs
        .expect_get()
        .with(eq(tenant()), eq(program.id.clone()))
        .returning(move |_, _| Ok(returned.clone()));
}

/// Tickets accepts every issuance and records what it was given.
fn record_issues(h: &mut Harness) -> Recorder<NewTicket> {
    let seen = Recorder::new();
    let record = seen.clone();
    h.tickets
        .expect_issue()
        .withf(|_, at| *at == now())
        .returning(move |new, _| {
            record.record(new.clone());
            Ok(())
        });
    seen
}

#[test]
fn an_issuer_issues_a_ticket_whose_code_hashes_to_what_was_stored() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = record_issues(&mut h);
    let request = IssueRequest {
        email: Some(Email::parse("Ann@Example.com").expect("valid email")),
        max_redemptions: None,
        subject: Some(Subject::try_from("user-7".to_owned()).expect("valid subject")),
        payload: Some(Payload::from_json_text("{\"seat\":\"A1\"}".to_owned()).expect("payload")),
        signed: false,
        replace: false,
        code: None,
        per_redeemer_limit: None,
    };
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, request.clone())
        .expect("issued");

    let [stored] = seen.all().try_into().expect("one issuance");
    assert_eq!(
        stored.code_hash,
        code_hash_of(&tenant(), issued.code.expose_secret())
    );
    assert_eq!(stored.link_hash, None);
    assert_eq!(stored.ticket.id, issued.ticket_id);
    assert_eq!(stored.ticket.tenant_id, tenant());
    assert_eq!(stored.ticket.program_id, program.id);
    assert_eq!(stored.ticket.email, request.email);
    assert_eq!(stored.ticket.subject, request.subject);
    assert_eq!(stored.ticket.payload, request.payload);
    assert_eq!(stored.ticket.state, TicketState::Active);
    assert_eq!(stored.ticket.redemptions, 0);
    assert_eq!(stored.ticket.version, 1);
    assert_eq!(stored.ticket.created_at, now());
    assert_eq!(issued.program_id, program.id);
    assert_eq!(issued.email, request.email);
    assert_eq!(issued.subject, request.subject);
    assert_eq!(issued.code.expose_secret().len(), 6);
    assert_eq!(issued.link, None);
    assert_eq!(issued.signed_code, None);
}

#[test]
fn admins_issue_tickets_too() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = record_issues(&mut h);
    h.build()
        .issue_ticket(&admin(), &program.id, IssueRequest::default())
        .expect("issued");
    assert_eq!(seen.all().len(), 1);
}

#[test]
fn redeemers_may_not_issue_read_or_revoke_tickets() {
    let caller = redeemer();
    let app = untouched();
    assert_eq!(
        app.issue_ticket(&caller, &ProgramId::generate(), IssueRequest::default()),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        app.get_ticket(&caller, &TicketId::generate()),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        app.list_tickets(&caller, &ProgramId::generate(), PageRequest::default()),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        app.revoke_ticket(&caller, &TicketId::generate()),
        Err(AppError::Forbidden)
    );
}

#[test]
fn issuing_from_a_program_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .withf(|tenant_id, _| *tenant_id == tenant())
        .returning(|_, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &ProgramId::generate(), IssueRequest::default()),
        Err(AppError::NotFound)
    );
}

#[test]
fn issuing_from_a_suspended_program_is_refused_before_the_store() {
    let mut program = program();
    program.state = ProgramState::Suspended;
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &program.id, IssueRequest::default()),
        Err(AppError::ProgramNotActive)
    );
}

#[test]
fn issuing_from_an_ended_program_is_refused_before_the_store() {
    let mut program = program();
    program.window =
        tessera_domain::ValidityWindow::new(now() - Duration::days(2), now() - Duration::days(1))
            .expect("valid window");
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &program.id, IssueRequest::default()),
        Err(AppError::ProgramNotActive)
    );
}

#[test]
fn issuing_from_a_full_program_is_refused_before_the_store() {
    let mut program = program();
    program.max_tickets = MaxTickets::try_from(3).expect("valid cap");
    program.issued_tickets = 3;
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &program.id, IssueRequest::default()),
        Err(AppError::MaxTicketsReached)
    );
}

#[test]
fn store_refusals_at_issuance_keep_their_meaning() {
    for (store_error, expected) in [
        (StoreError::NotFound, AppError::NotFound),
        (StoreError::ProgramNotActive, AppError::ProgramNotActive),
        (StoreError::MaxTicketsReached, AppError::MaxTicketsReached),
        (
            StoreError::SubjectHasActiveTicket,
            AppError::SubjectHasActiveTicket,
        ),
        (
            StoreError::Unavailable("down".to_owned()),
            AppError::Unavailable,
        ),
        (
            StoreError::Internal("boom".to_owned()),
            AppError::Internal("boom".to_owned()),
        ),
    ] {
        let program = program();
        let mut h = Harness::new();
        expect_program(&mut h, &program);
        let returned = store_error.clone();
        h.tickets
            .expect_issue()
            .times(1)
            .returning(move |_, _| Err(returned.clone()));
        assert_eq!(
            h.build()
                .issue_ticket(&issuer(), &program.id, IssueRequest::default()),
            Err(expected),
            "{store_error:?}"
        );
    }
}

#[test]
fn a_colliding_code_is_retried_with_a_new_code() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = Recorder::new();
    let first = seen.clone();
    h.tickets
        .expect_issue()
        .times(1)
        .returning(move |new: &NewTicket, _| {
            first.record(new.clone());
            Err(StoreError::DuplicateSecret)
        });
    let second = seen.clone();
    h.tickets
        .expect_issue()
        .times(1)
        .returning(move |new: &NewTicket, _| {
            second.record(new.clone());
            Ok(())
        });
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .expect("issued on retry");

    let [collided, stored] = seen.all().try_into().expect("two attempts");
    assert_ne!(
        collided.code_hash, stored.code_hash,
        "the retry draws a new code"
    );
    assert_eq!(
        stored.code_hash,
        code_hash_of(&tenant(), issued.code.expose_secret())
    );
    assert_eq!(issued.ticket_id, stored.ticket.id);
}

#[test]
fn repeated_code_collisions_give_up_with_internal() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    h.tickets
        .expect_issue()
        .times(SECRET_ATTEMPTS)
        .returning(|_, _| Err(StoreError::DuplicateSecret));
    assert!(matches!(
        h.build()
            .issue_ticket(&issuer(), &program.id, IssueRequest::default()),
        Err(AppError::Internal(_))
    ));
}

#[test]
fn a_program_with_a_url_prefix_gives_each_ticket_a_link_whose_token_hash_is_stored() {
    let mut program = program();
    program.url_prefix =
        Some(UrlPrefix::try_from("https://t.example/r/".to_owned()).expect("valid prefix"));
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = record_issues(&mut h);
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .expect("issued");

    let link = issued.link.expect("a link");
    let token = link
        .expose_secret()
        .strip_prefix("https://t.example/r/")
        .expect("the link starts with the prefix");
    assert!(!token.is_empty());
    assert_ne!(
        token,
        issued.code.expose_secret(),
        "the link token is not the code"
    );
    let [stored] = seen.all().try_into().expect("one issuance");
    assert_eq!(stored.link_hash, Some(link_hash_of(token)));
}

#[test]
fn the_issued_limit_is_the_lower_of_the_tickets_and_the_programs() {
    for (asked, program_limit, effective) in [(Some(5), 3, 3), (Some(2), 100, 2), (None, 7, 7)] {
        let mut program = program();
        program.max_redemptions = limit(program_limit);
        let mut h = Harness::new();
        expect_program(&mut h, &program);
        let seen = record_issues(&mut h);
        let request = IssueRequest {
            max_redemptions: asked.map(limit),
            ..IssueRequest::default()
        };
        let issued = h
            .build()
            .issue_ticket(&issuer(), &program.id, request)
            .expect("issued");
        assert_eq!(issued.max_redemptions, effective, "asked {asked:?}");
        let [stored] = seen.all().try_into().expect("one issuance");
        assert_eq!(
            stored.ticket.max_redemptions,
            asked.map(limit),
            "the ticket keeps its own limit so a later program change applies"
        );
    }
}

#[test]
fn the_code_never_shows_in_the_debug_output_of_an_issued_ticket() {
    let mut program = program();
    program.ticket_length = TicketLength::try_from(16).expect("valid length");
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    record_issues(&mut h);
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .expect("issued");
    assert_eq!(issued.code.expose_secret().len(), 16);
    assert!(!format!("{issued:?}").contains(issued.code.expose_secret()));
    assert!(!format!("{issued:#?}").contains(issued.code.expose_secret()));
}

#[test]
fn get_ticket_reads_the_callers_tenant() {
    let view = ticket_view(&program());
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    let returned = view.clone();
    h.tickets
        .expect_get()
        .with(eq(tenant()), eq(id.clone()))
        .times(1)
        .returning(move |_, _| Ok(returned.clone()));
    assert_eq!(h.build().get_ticket(&issuer(), &id), Ok(view));
}

#[test]
fn a_ticket_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.tickets
        .expect_get()
        .returning(|_, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build().get_ticket(&admin(), &TicketId::generate()),
        Err(AppError::NotFound)
    );
}

#[test]
fn list_tickets_passes_the_callers_tenant_program_and_page() {
    let program = program();
    let page = PageRequest::new(Some(50), Some(100)).expect("valid page");
    let listed = Page {
        items: vec![ticket_view(&program)],
        total: 101,
    };
    let mut h = Harness::new();
    let returned = listed.clone();
    h.tickets
        .expect_list()
        .with(eq(tenant()), eq(program.id.clone()), eq(page))
        .times(1)
        .returning(move |_, _, _| Ok(returned.clone()));
    assert_eq!(
        h.build().list_tickets(&issuer(), &program.id, page),
        Ok(listed)
    );
}

/// Tickets answers `get` with `view`, scoped to the caller's tenant.
fn expect_ticket(h: &mut Harness, view: &TicketView) {
    let returned = view.clone();
    h.tickets
        .expect_get()
        .with(eq(tenant()), eq(view.ticket.id.clone()))
        .returning(move |_, _| Ok(returned.clone()));
}

#[test]
fn unlocking_passes_the_version_read_as_the_expected_one() {
    let mut view = ticket_view(&program());
    view.ticket.state = TicketState::Locked;
    view.ticket.version = 7;
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    expect_ticket(&mut h, &view);
    let mut unlocked = view.clone();
    unlocked.ticket.state = TicketState::Active;
    unlocked.ticket.version = 8;
    let returned = unlocked.clone();
    h.tickets
        .expect_set_state()
        .with(
            eq(tenant()),
            eq(id.clone()),
            eq(TicketState::Active),
            eq(7),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _, _| Ok(returned.clone()));
    assert_eq!(
        h.build()
            .set_ticket_state(&admin(), &id, TicketState::Active, Some(7)),
        Ok(unlocked)
    );
}

#[test]
fn disabling_without_if_match_passes_the_version_read() {
    let mut view = ticket_view(&program());
    view.ticket.version = 3;
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    expect_ticket(&mut h, &view);
    let returned = view.clone();
    h.tickets
        .expect_set_state()
        .with(
            eq(tenant()),
            eq(id.clone()),
            eq(TicketState::Disabled),
            eq(3),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _, _| Ok(returned.clone()));
    assert!(h
        .build()
        .set_ticket_state(&admin(), &id, TicketState::Disabled, None)
        .is_ok());
}

#[test]
fn a_revoked_ticket_cannot_change_state() {
    let mut view = ticket_view(&program());
    view.ticket.state = TicketState::Revoked;
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    expect_ticket(&mut h, &view);
    match h
        .build()
        .set_ticket_state(&admin(), &id, TicketState::Active, None)
    {
        Err(AppError::Invalid(error)) => assert_eq!(error.field, "state"),
        other => panic!("expected Invalid(state), got {other:?}"),
    }
}

#[test]
fn an_admin_cannot_lock_or_revoke_through_set_state() {
    for target in [TicketState::Locked, TicketState::Revoked] {
        let view = ticket_view(&program());
        let id = view.ticket.id.clone();
        let mut h = Harness::new();
        expect_ticket(&mut h, &view);
        assert!(
            matches!(
                h.build().set_ticket_state(&admin(), &id, target, None),
                Err(AppError::Invalid(_))
            ),
            "{target:?}"
        );
    }
}

#[test]
fn set_state_with_a_stale_if_match_is_a_version_conflict_without_a_write() {
    let mut view = ticket_view(&program());
    view.ticket.version = 5;
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    expect_ticket(&mut h, &view);
    assert_eq!(
        h.build()
            .set_ticket_state(&admin(), &id, TicketState::Disabled, Some(4)),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn set_state_without_if_match_retries_after_a_concurrent_change() {
    let first = ticket_view(&program());
    let id = first.ticket.id.clone();
    let mut second = first.clone();
    second.ticket.version = 2;
    let mut h = Harness::new();
    h.tickets
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(first.clone()));
    h.tickets
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(second.clone()));
    let versions = Recorder::new();
    let conflict = versions.clone();
    h.tickets
        .expect_set_state()
        .times(1)
        .returning(move |_, _, _, version, _| {
            conflict.record(version);
            Err(StoreError::VersionConflict)
        });
    let success = versions.clone();
    h.tickets
        .expect_set_state()
        .times(1)
        .returning(move |_, _, _, version, _| {
            success.record(version);
            let mut view = ticket_view(&program());
            view.ticket.version = version + 1;
            Ok(view)
        });
    let changed = h
        .build()
        .set_ticket_state(&admin(), &id, TicketState::Disabled, None)
        .expect("changed on retry");
    assert_eq!(versions.all(), vec![1, 2]);
    assert_eq!(changed.ticket.version, 3);
}

#[test]
fn set_state_with_if_match_does_not_retry_a_concurrent_change() {
    let view = ticket_view(&program());
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    h.tickets
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(view.clone()));
    h.tickets
        .expect_set_state()
        .times(1)
        .returning(|_, _, _, _, _| Err(StoreError::VersionConflict));
    assert_eq!(
        h.build()
            .set_ticket_state(&admin(), &id, TicketState::Disabled, Some(1)),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn set_state_without_if_match_gives_up_after_repeated_conflicts() {
    let view = ticket_view(&program());
    let id = view.ticket.id.clone();
    let mut h = Harness::new();
    h.tickets
        .expect_get()
        .times(UPDATE_ATTEMPTS)
        .returning(move |_, _| Ok(view.clone()));
    h.tickets
        .expect_set_state()
        .times(UPDATE_ATTEMPTS)
        .returning(|_, _, _, _, _| Err(StoreError::VersionConflict));
    assert_eq!(
        h.build()
            .set_ticket_state(&admin(), &id, TicketState::Disabled, None),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn only_admins_change_a_tickets_state() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().set_ticket_state(
                &principal(role),
                &TicketId::generate(),
                TicketState::Active,
                None
            ),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn revoke_is_scoped_to_the_callers_tenant_and_stamped_now() {
    let id = TicketId::generate();
    for caller in [issuer(), admin()] {
        let mut h = Harness::new();
        h.tickets
            .expect_revoke()
            .with(eq(tenant()), eq(id.clone()), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        assert_eq!(h.build().revoke_ticket(&caller, &id), Ok(()));
    }
}

#[test]
fn revoking_a_ticket_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.tickets
        .expect_revoke()
        .returning(|_, _, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build().revoke_ticket(&issuer(), &TicketId::generate()),
        Err(AppError::NotFound)
    );
}

/// What `sign_code` answers in the signing tests.
const SIGNATURE: &str = "c2lnbmF0dXJlLW9mLXRoZS1jb2Rl";

/// Replaces the harness's signer by one that expects exactly one `sign_code`,
/// answers [`SIGNATURE`] and records the program id and the code it was given.
fn expect_one_signature(h: &mut Harness) -> Recorder<(ProgramId, String)> {
    let seen = Recorder::new();
    let record = seen.clone();
    h.signer = MockTokenSigner::new();
    h.signer
        .expect_sign_code()
        .times(1)
        .returning(move |program, code| {
            record.record((program.clone(), code.expose_secret().to_owned()));
            SIGNATURE.to_owned()
        });
    seen
}

#[test]
fn a_signed_issuance_returns_the_code_and_its_signature_joined_by_a_dot() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    record_issues(&mut h);
    let signed = expect_one_signature(&mut h);
    let issued = h
        .build()
        .issue_ticket(
            &issuer(),
            &program.id,
            IssueRequest {
                signed: true,
                ..IssueRequest::default()
            },
        )
        .expect("issued");

    assert_eq!(
        signed.all(),
        vec![(program.id.clone(), issued.code.expose_secret().to_owned())],
        "the program id and the code are signed"
    );
    assert_eq!(
        issued.signed_code.as_ref().map(SignedCode::expose_secret),
        Some(format!("{}.{SIGNATURE}", issued.code.expose_secret()).as_str())
    );
}

#[test]
fn only_the_code_that_was_stored_is_signed_after_a_collision() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    h.tickets
        .expect_issue()
        .times(1)
        .returning(|_, _| Err(StoreError::DuplicateSecret));
    let stored = Recorder::new();
    let record = stored.clone();
    h.tickets
        .expect_issue()
        .times(1)
        .returning(move |new: &NewTicket, _| {
            record.record(new.code_hash);
            Ok(())
        });
    let signed = expect_one_signature(&mut h);
    let issued = h
        .build()
        .issue_ticket(
            &issuer(),
            &program.id,
            IssueRequest {
                signed: true,
                ..IssueRequest::default()
            },
        )
        .expect("issued on retry");

    let [(_, signed_code)] = signed.all().try_into().expect("one signature");
    assert_eq!(
        stored.all(),
        vec![code_hash_of(&tenant(), &signed_code)],
        "the signed code is the stored one"
    );
    assert_eq!(signed_code, issued.code.expose_secret());
}

#[test]
fn an_unsigned_issuance_never_calls_the_signer() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    record_issues(&mut h);
    // No expectation at all: any call to the signer fails the test.
    h.signer = MockTokenSigner::new();
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .expect("issued");
    assert_eq!(issued.signed_code, None);
}

#[test]
fn a_refused_signed_issuance_signs_nothing() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    h.tickets
        .expect_issue()
        .returning(|_, _| Err(StoreError::MaxTicketsReached));
    h.signer = MockTokenSigner::new();
    assert_eq!(
        h.build().issue_ticket(
            &issuer(),
            &program.id,
            IssueRequest {
                signed: true,
                ..IssueRequest::default()
            },
        ),
        Err(AppError::MaxTicketsReached)
    );
}
