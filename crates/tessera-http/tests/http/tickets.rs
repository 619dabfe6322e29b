use tessera_app::model::Page;
use tessera_app::usecases::{IssuedCode, IssuedTicket};
use tessera_app::AppError;
use tessera_domain::{
    Alphabet, Code, CodeInput, Email, LinkToken, SignedCode, TicketId, TicketLength, TicketLink,
    TicketState, UrlPrefix,
};

use crate::support::*;

const LINK_TOKEN: &str = "abcdefghijkmnopqrstuvwxyz1234567";

fn issued(email: Option<&str>) -> IssuedTicket {
    IssuedTicket {
        ticket_id: ticket_id(),
        program_id: program_id(),
        code: Code::generate(Alphabet::Numeric, TicketLength::DEFAULT),
        email: email.map(|e| Email::parse(e).unwrap()),
        subject: None,
        max_redemptions: 3,
        link: Some(TicketLink::join(
            &UrlPrefix::try_from("https://t.example/r/".to_owned()).unwrap(),
            &LinkToken::parse(LINK_TOKEN).unwrap(),
        )),
        signed_code: None,
    }
}

fn issue_path() -> String {
    format!("/v1/programs/{PROGRAM_ID}/tickets")
}

#[actix_web::test]
async fn issuing_answers_201_with_the_code_once() {
    let answer = issued(Some("ann@example.com"));
    let code = answer.code.expose_secret().to_owned();
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
            "link": format!("https://t.example/r/{LINK_TOKEN}"),
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
    let cases: [(&str, u16, &str, &str); 7] = [
        (r#"{"signed":"yes"}"#, 400, "invalid_request", "signed:"),
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
        (
            r#"{"perRedeemerLimit":0}"#,
            400,
            "invalid_request",
            "perRedeemerLimit",
        ),
        (r#"{"codes":"mine"}"#, 400, "invalid_request", "codes"),
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
            "held": 0,
            "remaining": 2,
            "state": "active",
            "failedAttempts": 0,
            "perRedeemerLimit": null,
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
        .expect_update_ticket()
        .withf(|_, id, changes, if_match| {
            *id == ticket_id()
                && changes.state == Some(TicketState::Disabled)
                && changes.max_redemptions.is_none()
                && *if_match == Some(2)
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
        mocks.tickets.expect_update_ticket().times(0);
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

#[actix_web::test]
async fn signed_issuance_returns_the_signed_code() {
    let mut answer = issued(None);
    let signed_code = format!("{}.c2lnbmF0dXJl", answer.code.expose_secret());
    answer.signed_code = Some(SignedCode::join(&answer.code, "c2lnbmF0dXJl"));
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_ticket()
        .withf(|_, _, request| request.signed)
        .times(1)
        .returning(move |_, _, _| Ok(answer.clone()));
    let reply = send(
        mocks,
        post_json(&issue_path(), Some(ISSUER_KEY), r#"{"signed":true}"#),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["signedCode"], signed_code.as_str());
}

// ---- bulk issuance ----

fn batch_path() -> String {
    format!("/v1/programs/{PROGRAM_ID}/tickets/batch")
}

fn code(text: &str) -> Code {
    CodeInput(text)
        .normalize(Alphabet::Alphanumeric, TicketLength::DEFAULT)
        .unwrap()
}

fn issued_code(id: &str, text: &str) -> IssuedCode {
    IssuedCode {
        ticket_id: TicketId::parse(id).unwrap(),
        code: code(text),
    }
}

#[actix_web::test]
async fn a_batch_streams_csv_chunk_by_chunk() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .withf(|caller, program, request, _| {
            caller.role == tessera_domain::Role::Issuer
                && *program == program_id()
                && request.count.get() == 3
                && request.max_redemptions.map(|m| m.get()) == Some(2)
                && request.payload.as_ref().map(|p| p.as_json_text()) == Some(r#"{"seat":"A1"}"#)
        })
        .times(1)
        .returning(|_, _, _, sink| {
            assert!(sink.accept(&[
                issued_code("tkt_33333333333333331111", "ABC123"),
                issued_code("tkt_44444444444444441111", "DEF456"),
            ]));
            assert!(sink.accept(&[issued_code("tkt_55555555555555551111", "GHI789")]));
            Ok(3)
        });
    let reply = send_raw(
        mocks,
        post_json(
            &batch_path(),
            Some(ISSUER_KEY),
            r#"{"count":3,"maxRedemptions":2,"payload":{"seat":"A1"}}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("text/csv"));
    assert_eq!(
        reply.header("content-disposition"),
        Some(format!("attachment; filename=\"{PROGRAM_ID}-tickets.csv\"").as_str())
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.text(),
        "ticketId,code\n\
         tkt_33333333333333331111,ABC123\n\
         tkt_44444444444444441111,DEF456\n\
         tkt_55555555555555551111,GHI789\n"
    );
}

#[actix_web::test]
async fn a_batch_with_only_the_count_uses_the_defaults() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .withf(|_, _, request, _| {
            request.count.get() == 1_000_000
                && request.max_redemptions.is_none()
                && request.payload.is_none()
        })
        .times(1)
        .returning(|_, _, _, sink| {
            sink.accept(&[issued_code("tkt_33333333333333331111", "ABC123")]);
            Ok(1)
        });
    let reply = send_raw(
        mocks,
        post_json(&batch_path(), Some(ADMIN_KEY), r#"{"count":1000000}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.text(),
        "ticketId,code\ntkt_33333333333333331111,ABC123\n"
    );
}

#[actix_web::test]
async fn batch_errors_before_the_first_chunk_are_json() {
    for (error, status, code) in [
        (AppError::MaxTicketsReached, 409, "max_tickets_reached"),
        (AppError::ProgramNotActive, 409, "program_not_active"),
        (AppError::NotFound, 404, "not_found"),
        (AppError::Forbidden, 403, "forbidden"),
        (AppError::Unavailable, 503, "unavailable"),
    ] {
        let mut mocks = Mocks::new();
        mocks
            .tickets
            .expect_issue_batch()
            .times(1)
            .returning(move |_, _, _, _| Err(error.clone()));
        let reply = send(
            mocks,
            post_json(&batch_path(), Some(REDEEMER_KEY), r#"{"count":10}"#),
        )
        .await;
        reply.assert_error(status, code);
    }
}

#[actix_web::test]
async fn a_batch_failing_mid_stream_is_cut_short() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .times(1)
        .returning(|_, _, _, sink| {
            sink.accept(&[issued_code("tkt_33333333333333331111", "ABC123")]);
            Err(AppError::Unavailable)
        });
    let reply = send_raw(
        mocks,
        post_json(&batch_path(), Some(ISSUER_KEY), r#"{"count":10000}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_err(), "{:?}", reply.body);
}

#[actix_web::test]
async fn a_batch_panicking_mid_stream_is_cut_short() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .times(1)
        .returning(|_, _, _, sink| {
            sink.accept(&[issued_code("tkt_33333333333333331111", "ABC123")]);
            panic!("boom")
        });
    let reply = send_raw(
        mocks,
        post_json(&batch_path(), Some(ISSUER_KEY), r#"{"count":10000}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_err(), "{:?}", reply.body);

    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .times(1)
        .returning(|_, _, _, _| panic!("boom"));
    let reply = send(
        mocks,
        post_json(&batch_path(), Some(ISSUER_KEY), r#"{"count":1}"#),
    )
    .await;
    reply.assert_error(500, "internal");
}

#[actix_web::test]
async fn bad_batch_requests_never_reach_the_use_case() {
    let big_payload = format!(r#"{{"count":1,"payload":"{}"}}"#, "x".repeat(17 * 1024));
    let cases: [(&str, u16, &str, &str); 9] = [
        (r#"{"count":0}"#, 400, "invalid_request", "count:"),
        (r#"{"count":1000001}"#, 400, "invalid_request", "count:"),
        (r#"{"count":-5}"#, 400, "invalid_request", "count:"),
        (r#"{"count":"10"}"#, 400, "invalid_request", "count:"),
        (r#"{}"#, 400, "invalid_request", "count"),
        (
            r#"{"count":10,"email":"a@example.com"}"#,
            400,
            "invalid_request",
            "email",
        ),
        (
            r#"{"count":10,"maxRedemptions":0}"#,
            400,
            "invalid_request",
            "maxRedemptions:",
        ),
        (r#"[1]"#, 400, "invalid_request", "object"),
        (&big_payload, 413, "payload_too_large", "payload:"),
    ];
    for (body, status, code, message) in cases {
        let mut mocks = Mocks::new();
        mocks.tickets.expect_issue_batch().times(0);
        let reply = send(mocks, post_json(&batch_path(), Some(ISSUER_KEY), body)).await;
        reply.assert_error(status, code);
        assert!(
            reply.message().contains(message),
            "{body}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn a_batch_needs_a_key_and_a_real_program_id() {
    let mut mocks = Mocks::new();
    mocks.tickets.expect_issue_batch().times(0);
    send(mocks, post_json(&batch_path(), None, r#"{"count":1}"#))
        .await
        .assert_error(401, "unauthorized");

    let mut mocks = Mocks::new();
    mocks.tickets.expect_issue_batch().times(0);
    send(
        mocks,
        post_json(
            "/v1/programs/prg_nope/tickets/batch",
            Some(ISSUER_KEY),
            r#"{"count":1}"#,
        ),
    )
    .await
    .assert_error(404, "not_found");

    let reply = send(Mocks::new(), get(&batch_path(), ISSUER_KEY)).await;
    reply.assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn a_client_that_leaves_stops_the_batch_with_little_buffered() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let done_tx = std::sync::Mutex::new(done_tx);
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_issue_batch()
        .times(1)
        .returning(move |_, _, _, sink| {
            let chunk = [issued_code("tkt_33333333333333331111", "ABC123")];
            let mut accepted = 0_u32;
            while accepted < 1000 && sink.accept(&chunk) {
                accepted += 1;
            }
            done_tx.lock().unwrap().send(accepted).unwrap();
            Ok(accepted)
        });
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(tessera_http::configure(mocks.state())),
    )
    .await;
    let req = post_json(&batch_path(), Some(ISSUER_KEY), r#"{"count":1000000}"#);
    let res = actix_web::test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 200);
    // The client reads nothing and leaves: the batch must stop, having produced
    // no more than the channel holds.
    drop(res);
    let accepted = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the batch stopped");
    assert!((1..=5).contains(&accepted), "{accepted} chunks accepted");
}

#[actix_web::test]
async fn a_refill_reaches_the_use_case_as_a_new_own_limit() {
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_update_ticket()
        .withf(|_, id, changes, if_match| {
            *id == ticket_id()
                && changes.state.is_none()
                && changes.max_redemptions.map(|limit| limit.get()) == Some(7)
                && if_match.is_none()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(ticket_view()));
    let reply = send(
        mocks,
        patch_json(
            &format!("/v1/tickets/{TICKET_ID}"),
            ADMIN_KEY,
            r#"{"maxRedemptions":7}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut mocks = Mocks::new();
    mocks.tickets.expect_update_ticket().times(0);
    let reply = send(
        mocks,
        patch_json(
            &format!("/v1/tickets/{TICKET_ID}"),
            ADMIN_KEY,
            r#"{"maxRedemptions":0}"#,
        ),
    )
    .await;
    reply.assert_error(400, "invalid_request");
}
