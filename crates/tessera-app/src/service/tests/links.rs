//! Link pages' use cases: viewing never consumes, redeeming goes through the
//! redemption store like a code, and failures are one `InvalidCode`, throttled.

use std::net::{IpAddr, Ipv4Addr};

use chrono::Duration;
use mockall::predicate::eq;
use tessera_domain::{LinkToken, Program, ProgramId, RedemptionFailure, TicketState, UrlPrefix};

use super::redeem::{fail_with, succeed, EVERY_FAILURE};
use crate::links::{LinkRedeemRequest, LinkUseCases, LinkedTicket};
use crate::model::SecretHash;
use crate::service::test_support::*;
use crate::{AppError, Limits};

fn url_program() -> Program {
    let mut program = program();
    program.url_prefix =
        Some(UrlPrefix::try_from("https://t.example/r/".to_owned()).expect("valid prefix"));
    program
}

fn linked(program: &Program) -> LinkedTicket {
    LinkedTicket {
        view: ticket_view(program),
        program: program.clone(),
        code_hash: code_hash_of(&program.tenant_id, "aB3dE6"),
    }
}

/// The link store knows `token`, as `found`, and nothing else.
fn expect_link(h: &mut Harness, token: &LinkToken, found: LinkedTicket) {
    h.links
        .expect_find_by_link()
        .with(eq(token.tenant()), eq(link_hash_of(token.expose_secret())))
        .returning(move |_, _| Ok(Some(found.clone())));
}

fn press(token: &LinkToken) -> LinkRedeemRequest {
    LinkRedeemRequest {
        token: Some(token.clone()),
        email: None,
        client: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
    }
}

#[test]
fn viewing_a_link_shows_what_it_grants_and_touches_no_redemption() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    let mut h = Harness::new();
    let mut found = linked(&program);
    found.view.ticket.redemptions = 40;
    found.view.ticket.email = Some(tessera_domain::Email::parse("a@b.example").expect("email"));
    expect_link(&mut h, &token, found);
    // No expectation on h.redemptions: a call to it would fail this test.
    let view = h.build().view_link(&token).expect("shown");
    assert_eq!(view.remaining, 60);
    assert!(view.email_required);
    assert_eq!(view.program_id, program.id);
    assert_eq!(view.valid_until, program.window.end());
    assert_eq!(view.url_prefix, program.url_prefix);
}

#[test]
fn unknown_revoked_used_up_and_ended_links_are_not_found() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    let mut h = Harness::new();
    h.links.expect_find_by_link().returning(|_, _| Ok(None));
    assert_eq!(h.build().view_link(&token), Err(AppError::NotFound));

    let mut revoked = linked(&program);
    revoked.view.ticket.state = TicketState::Revoked;
    let mut used_up = linked(&program);
    used_up.view.ticket.redemptions = 100;
    let mut ended = linked(&program);
    ended.program.window = tessera_domain::ValidityWindow::new(
        now() - Duration::days(2),
        now() - Duration::seconds(1),
    )
    .expect("window");
    for found in [revoked, used_up, ended] {
        let mut h = Harness::new();
        expect_link(&mut h, &token, found.clone());
        assert_eq!(
            h.build().view_link(&token),
            Err(AppError::NotFound),
            "{found:?}"
        );
    }
}

#[test]
fn a_locked_or_not_yet_valid_link_still_shows_its_page() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    let mut locked = linked(&program);
    locked.view.ticket.state = TicketState::Locked;
    let mut early = linked(&program);
    early.program.window =
        tessera_domain::ValidityWindow::new(now() + Duration::days(1), now() + Duration::days(2))
            .expect("window");
    for (found, not_yet_valid) in [(locked, false), (early, true)] {
        let mut h = Harness::new();
        expect_link(&mut h, &token, found);
        let view = h.build().view_link(&token).expect("shown");
        assert_eq!(view.not_yet_valid, not_yet_valid);
    }
}

#[test]
fn pressing_the_button_redeems_the_linked_code_hash_with_the_typed_email() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    let mut h = Harness::new();
    let found = linked(&program);
    let code_hash: SecretHash = found.code_hash;
    expect_link(&mut h, &token, found);
    let seen = succeed(&mut h);
    let request = LinkRedeemRequest {
        email: Some("  Ann@Example.COM ".to_owned()),
        ..press(&token)
    };
    let redemption = h.build().redeem_link(request).expect("redeemed");
    assert_eq!(redemption.access_token, access_token());
    let [attempt] = seen.all().try_into().expect("one attempt");
    assert_eq!(attempt.code_hash, code_hash);
    assert_eq!(attempt.tenant_id, program.tenant_id);
    assert_eq!(attempt.program_id, program.id);
    assert_eq!(attempt.email.as_deref(), Some("ann@example.com"));
    assert_eq!(attempt.now, now());
}

#[test]
fn every_failure_of_a_link_is_an_invalid_code() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    for reason in EVERY_FAILURE {
        let mut h = Harness::new();
        expect_link(&mut h, &token, linked(&program));
        fail_with(&mut h, reason);
        assert_eq!(
            h.build().redeem_link(press(&token)),
            Err(AppError::InvalidCode),
            "{reason:?}"
        );
    }
}

#[test]
fn an_unknown_or_malformed_link_fails_without_a_redemption() {
    let token = LinkToken::generate(&tessera_domain::TenantId::generate());
    let mut h = Harness::new();
    h.links
        .expect_find_by_link()
        .times(1)
        .returning(|_, _| Ok(None));
    let app = h.build();
    assert_eq!(app.redeem_link(press(&token)), Err(AppError::InvalidCode));
    let malformed = LinkRedeemRequest {
        token: None,
        ..press(&token)
    };
    assert_eq!(app.redeem_link(malformed), Err(AppError::InvalidCode));
}

#[test]
fn link_failures_count_towards_the_throttle_and_then_nothing_is_evaluated() {
    let program = url_program();
    let token = LinkToken::generate(&program.tenant_id);
    let mut h = Harness::new();
    h.limits = Limits {
        redeem_failures_per_minute: 3,
        ..Limits::default()
    };
    expect_link(&mut h, &token, linked(&program));
    let attempts = fail_with(&mut h, RedemptionFailure::TicketExhausted);
    let app = h.build();
    for _ in 0..3 {
        assert_eq!(app.redeem_link(press(&token)), Err(AppError::InvalidCode));
    }
    assert!(matches!(
        app.redeem_link(press(&token)),
        Err(AppError::TooManyAttempts { .. })
    ));
    assert_eq!(
        attempts.all().len(),
        3,
        "the refused attempt was not evaluated"
    );
}

#[test]
fn unknown_links_count_against_the_client_too() {
    let token = LinkToken::generate(&tessera_domain::TenantId::generate());
    let mut h = Harness::new();
    h.limits = Limits {
        redeem_failures_per_minute: 2,
        ..Limits::default()
    };
    h.links.expect_find_by_link().returning(|_, _| Ok(None));
    let app = h.build();
    for _ in 0..2 {
        assert_eq!(app.redeem_link(press(&token)), Err(AppError::InvalidCode));
    }
    assert!(matches!(
        app.redeem_link(press(&token)),
        Err(AppError::TooManyAttempts { .. })
    ));
}

#[test]
fn the_code_form_names_its_program_and_an_unknown_one_is_not_found() {
    let mut program = url_program();
    program.name = Some(tessera_domain::Label::try_from("Gala".to_owned()).expect("label"));
    let mut h = Harness::new();
    let located = program.clone();
    h.programs
        .expect_locate()
        .with(eq(program.id.clone()))
        .returning(move |_| Ok(Some(located.clone())));
    h.programs.expect_locate().returning(|_| Ok(None));
    let app = h.build();
    let form = app.code_form(&program.id).expect("known");
    assert_eq!(form.program_name.as_deref(), Some("Gala"));
    assert_eq!(form.object_id, "iq__3ax1");
    assert_eq!(
        app.code_form(&ProgramId::generate()),
        Err(AppError::NotFound)
    );
}
