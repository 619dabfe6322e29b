use tessera_app::ports::Page;
use tessera_app::usecases::IssuedTicket;
use tessera_domain::{Alphabet, Code, Email, TicketLength, TicketState};

use crate::support::*;

fn issued(email: Option<&str>) -> IssuedTicket {
    IssuedTicket {
        ticket_id: ticket_id(),
        program_id: program_id(),
        code: Code::generate(Alphabet::Numeric, TicketLength::DEFAULT),
        email: email.map(|e| Email::parse(e).unwrap()),
        subject: None,
        max_redemptions: 3,
        link: Some("https://t.example/r/abc".to_owned()),
    }
}

fn issue_path() -> String {
    format!("/v1/programs/{PROGRAM_ID}/tickets")
}

#[actix_web::test]
async fn issuing_answers_201_with_the_code_once() {
    let answer = issued(Some("ann@example.com"));
    let code = answer.code.expose().to_owned();
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_ticket()
        .withf(|_, program, request| {
            *program == program_id()
                && request.email.as_ref().map(Email::as_str) == Some("ann@example.com")
                && request.max_redemptions.map(|m| m.get()) == Some(3)
                && request.payload.as_ref().map(|p| p.as_json_text()) == Some(r#"{"seat":"A1"}"#)
        })
        .times(1)
        .returning(move |_, _, _| Ok(answer.clone()));
    let body =
        r#"{"email":"ann@example.com","maxRedemptions":3,"payload":{"seat":"A1"},"signed":false}"#;
    let reply = send(mocks, post_json(&issue_path(), Some(ISSUER_KEY), body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "ticketId": TICKET_ID,
            "programId": PROGRAM_ID,
            "code": code,
            "email": "ann@example.com",
            "subject": null,
            "maxRedemptions": 3,
            "link": "https://t.example/r/abc",
            "signedCode": null,
        })
    );
}

#[actix_web::test]
async fn an_empty_email_means_none() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_ticket()
        .withf(|_, _, request| request.email.is_none() && request.payload.is_none())
        .times(1)
        .returning(|_, _, _| Ok(issued(None)));
    let reply = send(
        mocks,
        post_json(
            &issue_path(),
            Some(ISSUER_KEY),
            r#"{"email":"","payload":null}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["email"], serde_json::Value::Null);
}

#[actix_web::test]
async fn bad_issue_requests_never_reach_the_use_case() {
    let big_payload = format!(r#"{{"payload":"{}"}}"#, "x".repeat(17 * 1024));
    let cases: [(&str, u16, &str, &str); 6] = [
        (
            r#"{"signed":true}"#,
            400,
            "invalid_request",
            "signed: signed codes are not available yet",
        ),
        (
            r#"{"email":"not-an-email"}"#,
            400,
            "invalid_request",
            "email:",
        ),
        (
            r#"{"maxRedemptions":0}"#,
            400,
            "invalid_request",
            "maxRedemptions:",
        ),
        (
            r#"{"maxRedemptions":"3"}"#,
            400,
            "invalid_request",
            "maxRedemptions:",
        ),
        (r#"{"code":"mine"}"#, 400, "invalid_request", "code"),
        (&big_payload, 413, "payload_too_large", "payload:"),
    ];
    for (body, status, code, message) in cases {
        let mut mocks = Mocks::new();
        mocks.tickets.expect_issue_ticket().times(0);
        let reply = send(mocks, post_json(&issue_path(), Some(ISSUER_KEY), body)).await;
        reply.assert_error(status, code);
        assert!(reply.message().contains(message), "{}", reply.message());
    }
}

#[actix_web::test]
async fn an_empty_body_object_issues_with_defaults() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_ticket()
        .withf(|_, _, request| *request == Default::default())
        .times(1)
        .returning(|_, _, _| Ok(issued(None)));
    let reply = send(mocks, post_json(&issue_path(), Some(ISSUER_KEY), "{}")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[actix_web::test]
async fn a_ticket_reads_with_remaining_and_null_times() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_get_ticket()
        .withf(|_, id| *id == ticket_id())
        .times(1)
        .returning(|_, _| Ok(ticket_view()));
    let reply = send(mocks, get(&format!("/v1/tickets/{TICKET_ID}"), ADMIN_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    assert_eq!(
        reply.body,
        serde_json::json!({
            "id": TICKET_ID,
            "programId": PROGRAM_ID,
            "email": null,
            "subject": null,
            "maxRedemptions": 3,
            "redemptions": 1,
            "remaining": 2,
            "state": "active",
            "failedAttempts": 0,
            "lastRedeemedAt": "2020-11-02T23:55:51.043Z",
            "lastFailedAt": null,
            "createdAt": "2020-11-02T23:55:50.043Z",
            "version": 2,
        })
    );
}

#[actix_web::test]
async fn a_program_s_tickets_are_listed() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_list_tickets()
        .withf(|_, program, page| *program == program_id() && page.count() == 1)
        .times(1)
        .returning(|_, _, _| {
            Ok(Page {
                items: vec![ticket_view()],
                total: 5,
            })
        });
    let reply = send(
        mocks,
        get(&format!("{}?count=1&offset=2", issue_path()), ADMIN_KEY),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["start"], 2);
    assert_eq!(reply.body["end"], 3);
    assert_eq!(reply.body["total"], 5);
    assert_eq!(reply.body["tickets"][0]["id"], TICKET_ID);
}

#[actix_web::test]
async fn ticket_state_is_patched_with_if_match() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_set_ticket_state()
        .withf(|_, id, state, if_match| {
            *id == ticket_id() && *state == TicketState::Disabled && *if_match == Some(2)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(ticket_view()));
    let req = patch_json(
        &format!("/v1/tickets/{TICKET_ID}"),
        ADMIN_KEY,
        r#"{"state":"disabled"}"#,
    )
    .insert_header(("If-Match", "\"2\""));
    let reply = send(mocks, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    for body in [
        r#"{"state":"revoked"}"#,
        r#"{"state":"locked"}"#,
        r#"{}"#,
        r#"{"state":1}"#,
    ] {
        let mut mocks = Mocks::new();
        mocks.tickets.expect_set_ticket_state().times(0);
        let reply = send(
            mocks,
            patch_json(&format!("/v1/tickets/{TICKET_ID}"), ADMIN_KEY, body),
        )
        .await;
        reply.assert_error(400, "invalid_request");
        assert!(reply.message().contains("state"), "{}", reply.message());
    }
}

#[actix_web::test]
async fn revoking_is_204() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_revoke_ticket()
        .withf(|_, id| *id == ticket_id())
        .times(1)
        .returning(|_, _| Ok(()));
    let reply = send(
        mocks,
        delete(&format!("/v1/tickets/{TICKET_ID}"), ISSUER_KEY),
    )
    .await;
    assert_eq!(reply.status, 204);

    let mut mocks = Mocks::new();
    mocks.tickets.expect_revoke_ticket().times(0);
    send(mocks, delete("/v1/tickets/tkt_short", ISSUER_KEY))
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn issuing_maps_the_use_case_conflicts() {
    for (error, code) in [
        (
            tessera_app::AppError::ProgramNotActive,
            "program_not_active",
        ),
        (
            tessera_app::AppError::MaxTicketsReached,
            "max_tickets_reached",
        ),
        (
            tessera_app::AppError::SubjectHasActiveTicket,
            "subject_has_active_ticket",
        ),
    ] {
        let mut mocks = Mocks::new();
        mocks
            .tickets
            .expect_issue_ticket()
            .returning(move |_, _, _| Err(error.clone()));
        let reply = send(mocks, post_json(&issue_path(), Some(ISSUER_KEY), "{}")).await;
        reply.assert_error(409, code);
    }
}
