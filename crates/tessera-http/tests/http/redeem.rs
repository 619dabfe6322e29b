use std::net::{IpAddr, SocketAddr};

use tessera_app::model::{AccessToken, Grant};
use tessera_app::usecases::Redemption;
use tessera_app::AppError;
use tessera_domain::{Payload, RedemptionFailure, Role};

use crate::support::*;

const REDEMPTION_ID: &str = "rdm_33333333333333332222";

pub fn redemption() -> Redemption {
    Redemption {
        grant: Grant {
            tenant_id: tenant(),
            program_id: program_id(),
            ticket_id: ticket_id(),
            redemption_id: tessera_domain::RedemptionId::parse(REDEMPTION_ID).unwrap(),
            remaining: 99,
            object_id: "iq__3ax1".to_owned(),
            group_addresses: vec!["0x96bb".to_owned()],
            payload: Some(Payload::from_json_text(r#"{"seat":"A1"}"#.to_owned()).unwrap()),
        },
        access_token: AccessToken::new("eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_owned(), 3600),
    }
}

fn expecting_program(tenant_named: bool) -> Mocks {
    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .withf(move |caller, request| {
            caller.is_none()
                && request.program_id == Some(program_id())
                && request.tenant_id.is_some() == tenant_named
                && request.code.expose_secret() == "ABC123"
        })
        .times(1)
        .returning(|_, _| Ok(redemption()));
    mocks
}

#[actix_web::test]
async fn redeeming_by_program_id_answers_what_the_ticket_grants() {
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    let reply = send(
        expecting_program(false),
        post_json("/v1/redeem", None, &body),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "objectId": "iq__3ax1",
            "ticketId": TICKET_ID,
            "redemptionId": REDEMPTION_ID,
            "remaining": 99,
            "groupAddresses": ["0x96bb"],
            "payload": {"seat": "A1"},
            "accessToken": "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
            "tokenType": "Bearer",
            "expiresIn": 3600,
        })
    );
    assert!(reply.body.get("programId").is_none());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn every_way_of_naming_the_program_is_understood() {
    let issuer = format!("/otp/ntp/ten_11111111111111111111/{PROGRAM_ID}");
    for (body, tenant_named) in [
        (
            format!(r#"{{"code":"ABC123","ntpId":"{PROGRAM_ID}"}}"#),
            false,
        ),
        (
            format!(
                r#"{{"code":"ABC123","tenantId":"ten_11111111111111111111","ntpId":"{PROGRAM_ID}"}}"#
            ),
            true,
        ),
        (format!(r#"{{"code":"ABC123","issuer":"{issuer}"}}"#), true),
        (
            format!(
                r#"{{"code":"ABC123","issuer":"{issuer}","programId":"{PROGRAM_ID}","email":""}}"#
            ),
            true,
        ),
    ] {
        let reply = send(
            expecting_program(tenant_named),
            post_json("/v1/redeem", None, &body),
        )
        .await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.text);
    }
}

#[actix_web::test]
async fn include_program_id_adds_it_under_either_name() {
    for flag in ["includeProgramId", "includeNTPId"] {
        let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","{flag}":true}}"#);
        let reply = send(
            expecting_program(false),
            post_json("/v1/redeem", None, &body),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["programId"], PROGRAM_ID);
    }
}

#[actix_web::test]
async fn requests_that_name_no_program_or_two_are_400() {
    for body in [
        r#"{"code":"ABC123"}"#.to_owned(),
        r#"{"code":"ABC123","tenantId":"ten_11111111111111111111"}"#.to_owned(),
        format!(
            r#"{{"code":"ABC123","issuer":"/otp/ntp/ten_11111111111111111111/{PROGRAM_ID}","programId":"prg_55555555555555551111"}}"#
        ),
        format!(
            r#"{{"code":"ABC123","issuer":"/otp/ntp/ten_11111111111111111111/{PROGRAM_ID}","tenantId":"ten_55555555555555551111"}}"#
        ),
        r#"{"code":"ABC123","issuer":"somewhere"}"#.to_owned(),
        format!(r#"{{"programId":"{PROGRAM_ID}"}}"#),
        format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","ntpId":"{PROGRAM_ID}"}}"#),
        format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","extra":1}}"#),
    ] {
        let mut mocks = Mocks::new();
        mocks.redeem.expect_redeem().times(0);
        let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
        reply.assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_malformed_program_or_tenant_id_reaches_the_use_case_as_no_program() {
    for body in [
        r#"{"code":"ABC123","programId":"prg_nope"}"#.to_owned(),
        r#"{"code":"ABC123","ntpId":"nope"}"#.to_owned(),
        r#"{"code":"ABC123","issuer":"/otp/ntp/ten_x/prg_y"}"#.to_owned(),
        format!(r#"{{"code":"ABC123","issuer":"/otp/ntp/ten_x/{PROGRAM_ID}"}}"#),
        format!(r#"{{"code":"ABC123","tenantId":"bad","programId":"{PROGRAM_ID}"}}"#),
    ] {
        let mut mocks = Mocks::new();
        mocks
            .redeem
            .expect_redeem()
            .withf(|_, request| {
                request.program_id.is_none()
                    && request.tenant_id.is_none()
                    && request.code.expose_secret() == "ABC123"
            })
            .times(1)
            .returning(|_, _| Err(AppError::InvalidCode));
        let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
        reply.assert_error(404, "invalid_code");
    }
}

#[actix_web::test]
async fn a_key_gives_detailed_failures_and_an_unknown_key_is_401() {
    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .withf(|caller, _| caller.as_ref().map(|c| c.role) == Some(Role::Redeemer))
        .times(1)
        .returning(|_, _| Err(AppError::Redemption(RedemptionFailure::TicketExhausted)));
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    let reply = send(mocks, post_json("/v1/redeem", Some(REDEEMER_KEY), &body)).await;
    reply.assert_error(409, "ticket_exhausted");

    let mut mocks = Mocks::new();
    mocks.redeem.expect_redeem().times(0);
    let reply = send(mocks, post_json("/v1/redeem", Some("tsk_unknown"), &body)).await;
    reply.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn public_failures_are_invalid_code() {
    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .returning(|_, _| Err(AppError::InvalidCode));
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
    reply.assert_error(404, "invalid_code");
}

#[actix_web::test]
async fn the_email_is_passed_and_an_empty_one_dropped() {
    for (email, expected) in [
        (r#""Ann@Example.com""#, Some("Ann@Example.com")),
        (r#""""#, None),
        ("null", None),
    ] {
        let mut mocks = Mocks::new();
        mocks
            .redeem
            .expect_redeem()
            .withf(move |_, request| request.email.as_deref() == expected)
            .times(1)
            .returning(|_, _| Ok(redemption()));
        let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","email":{email}}}"#);
        let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
}

#[actix_web::test]
async fn a_signed_code_is_passed_as_presented() {
    let signed = "ABC123.bm90IGEgcmVhbCBzaWduYXR1cmU";
    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .withf(move |_, request| request.code.expose_secret() == signed)
        .times(1)
        .returning(|_, _| Ok(redemption()));
    let body = format!(r#"{{"code":"{signed}","programId":"{PROGRAM_ID}"}}"#);
    let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[actix_web::test]
async fn too_many_attempts_is_429_with_retry_after() {
    let mut mocks = Mocks::new();
    mocks.redeem.expect_redeem().times(1).returning(|_, _| {
        Err(AppError::TooManyAttempts {
            retry_after_seconds: 42,
        })
    });
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    let reply = send(mocks, post_json("/v1/redeem", None, &body)).await;
    reply.assert_error(429, "too_many_attempts");
    assert_eq!(reply.header("retry-after"), Some("42"));
}

const PROXY: &str = "10.0.0.1";
const CLIENT: &str = "203.0.113.7";

/// The client address the use case receives for a request from `peer` with
/// `forwarded_for`, when `trusted` are the trusted proxies.
async fn client_seen(
    peer: Option<&str>,
    forwarded_for: Option<&str>,
    trusted: &[&str],
) -> Option<IpAddr> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut mocks = Mocks::new();
    mocks.settings.trusted_proxies = trusted.iter().map(|ip| ip.parse().unwrap()).collect();
    let record = seen.clone();
    mocks
        .redeem
        .expect_redeem()
        .times(1)
        .returning(move |_, request| {
            *record.lock().unwrap() = Some(request.client);
            Ok(redemption())
        });
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    let mut req = post_json("/v1/redeem", None, &body);
    if let Some(peer) = peer {
        req = req.peer_addr(SocketAddr::new(peer.parse().unwrap(), 40_000));
    }
    if let Some(header) = forwarded_for {
        req = req.insert_header(("X-Forwarded-For", header));
    }
    let reply = send(mocks, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let seen = seen.lock().unwrap().take();
    seen.expect("the use case was called")
}

#[actix_web::test]
async fn the_client_is_the_peer_by_default() {
    assert_eq!(
        client_seen(Some(CLIENT), None, &[]).await,
        Some(CLIENT.parse().unwrap())
    );
    assert_eq!(client_seen(None, None, &[]).await, None);
}

#[actix_web::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    assert_eq!(
        client_seen(Some(CLIENT), Some("6.6.6.6"), &[PROXY]).await,
        Some(CLIENT.parse().unwrap())
    );
    // A proxy that is not configured as trusted is just a client.
    assert_eq!(
        client_seen(Some(PROXY), Some(CLIENT), &[]).await,
        Some(PROXY.parse().unwrap())
    );
}

#[actix_web::test]
async fn x_forwarded_for_from_a_trusted_peer_is_believed() {
    assert_eq!(
        client_seen(Some(PROXY), Some(&format!("6.6.6.6, {CLIENT}")), &[PROXY]).await,
        Some(CLIENT.parse().unwrap())
    );
    // Garbage buys no fresh budget and never spends the proxy's own.
    assert_eq!(
        client_seen(Some(PROXY), Some("not an address"), &[PROXY]).await,
        Some(tessera_app::throttle::UNATTRIBUTABLE)
    );
}
