use tessera_app::model::{Page, StandaloneUse, UsesLeft};
use tessera_app::usecases::DeleteOutcome;
use tessera_app::AppError;
use tessera_domain::{
    Label, Payload, StandaloneTicket, StandaloneTicketId, StandaloneToken, Ttl, Uses,
};

use crate::support::*;

#[actix_web::test]
async fn creating_a_standalone_ticket_applies_the_defaults() {
    let token = StandaloneToken::generate();
    let secret = token.expose_secret().to_owned();
    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_create_standalone()
        .withf(|_, new| {
            new.ttl == Ttl::DEFAULT
                && new.uses == Uses::DEFAULT
                && new.payload.is_none()
                && new.name.is_none()
                && new.permissions.is_none()
        })
        .times(1)
        .returning(move |_, _| Ok(token.clone()));
    let reply = send(mocks, post_json("/v1/tickets", Some(ISSUER_KEY), "{}")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body, serde_json::json!({"ticket": secret}));
}

#[actix_web::test]
async fn creating_a_registration_token() {
    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_create_standalone()
        .withf(|_, new| {
            new.ttl == Ttl::try_from(0).unwrap()
                && new.uses == Uses::try_from(5).unwrap()
                && new.name.as_ref().map(Label::as_str) == Some("signup")
                && new.permissions.as_ref().map(Payload::as_json_text) == Some(r#"{"admin":false}"#)
                && new.payload.as_ref().map(Payload::as_json_text) == Some("[1,2]")
        })
        .times(1)
        .returning(|_, _| Ok(StandaloneToken::generate()));
    let body =
        r#"{"ttl":0,"uses":5,"name":"signup","permissions":{"admin":false},"payload":[1,2]}"#;
    let reply = send(mocks, post_json("/v1/tickets", Some(ISSUER_KEY), body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[actix_web::test]
async fn bad_standalone_requests_are_refused() {
    for (body, named) in [
        (r#"{"permissions":[1]}"#, "permissions"),
        (r#"{"ttl":-1}"#, "ttl"),
        (r#"{"uses":1.5}"#, "uses"),
        (r#"{"uses":"2"}"#, "uses"),
        (r#"{"tll":60}"#, "tll"),
    ] {
        let mut mocks = Mocks::new();
        mocks.standalone.expect_create_standalone().times(0);
        let reply = send(mocks, post_json("/v1/tickets", Some(ISSUER_KEY), body)).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().contains(named),
            "{body}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn using_a_ticket_returns_uses_left_and_payload() {
    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_use_standalone()
        .withf(|_, presented| presented.expose_secret() == "the-ticket")
        .times(1)
        .returning(|_, _| {
            Ok(StandaloneUse {
                uses_left: UsesLeft::Unlimited,
                payload: Some(Payload::from_json_text(r#"{"a":1}"#.to_owned()).unwrap()),
            })
        });
    let reply = send(
        mocks,
        post_json(
            "/v1/tickets/use",
            Some(REDEEMER_KEY),
            r#"{"ticket":"the-ticket"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({"uses": null, "payload": {"a": 1}})
    );
}

#[actix_web::test]
async fn using_an_unknown_ticket_is_404_ticket_not_found() {
    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_use_standalone()
        .returning(|_, _| Err(AppError::NotFound));
    let reply = send(
        mocks,
        post_json(
            "/v1/tickets/use",
            Some(REDEEMER_KEY),
            r#"{"ticket":"gone"}"#,
        ),
    )
    .await;
    reply.assert_error(404, "ticket_not_found");

    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_use_standalone()
        .returning(|_, _| Err(AppError::Forbidden));
    let reply = send(
        mocks,
        post_json("/v1/tickets/use", Some(ISSUER_KEY), r#"{"ticket":"x"}"#),
    )
    .await;
    reply.assert_error(403, "forbidden");
}

#[actix_web::test]
async fn deleting_reports_what_was_deleted() {
    for (outcome, expected) in [
        (
            DeleteOutcome {
                uses: Some(2),
                deleted: 1,
            },
            serde_json::json!({"uses": 2, "deleted": 1}),
        ),
        (
            DeleteOutcome {
                uses: None,
                deleted: 0,
            },
            serde_json::json!({"uses": null, "deleted": 0}),
        ),
    ] {
        let mut mocks = Mocks::new();
        mocks
            .standalone
            .expect_delete_standalone()
            .times(1)
            .returning(move |_, _| Ok(outcome));
        let reply = send(
            mocks,
            post_json("/v1/tickets/delete", Some(ISSUER_KEY), r#"{"ticket":"t"}"#),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body, expected);
    }
    let mut mocks = Mocks::new();
    mocks.standalone.expect_delete_standalone().times(0);
    let reply = send(
        mocks,
        post_json("/v1/tickets/delete", Some(ISSUER_KEY), "{}"),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.message().contains("ticket"));
}

#[actix_web::test]
async fn standalone_tickets_are_listed_without_secrets() {
    let ticket = StandaloneTicket {
        id: StandaloneTicketId::parse("stk_66666666666666661111").unwrap(),
        tenant_id: tenant(),
        name: Some(Label::try_from("signup".to_owned()).unwrap()),
        permissions: Some(Payload::from_json_text(r#"{"admin":false}"#.to_owned()).unwrap()),
        payload: Some(Payload::from_json_text("1".to_owned()).unwrap()),
        total_uses: Uses::try_from(5).unwrap(),
        uses_left: Some(4),
        expires_at: None,
        created_at: at_millis(START_MS),
    };
    let mut mocks = Mocks::new();
    mocks
        .standalone
        .expect_list_standalone()
        .withf(|_, page| page.count() == 10 && page.offset() == 0)
        .times(1)
        .returning(move |_, _| {
            Ok(Page {
                items: vec![ticket.clone()],
                total: 1,
            })
        });
    let reply = send(mocks, get("/v1/tickets", ISSUER_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "tickets": [{
                "id": "stk_66666666666666661111",
                "name": "signup",
                "permissions": {"admin": false},
                "uses": 4,
                "totalUsesAllowed": 5,
                "expiresAt": null,
                "createdAt": "2020-11-02T23:55:51.043Z",
            }],
            "start": 0,
            "end": 1,
            "total": 1,
        })
    );
}
