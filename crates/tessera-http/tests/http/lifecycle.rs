//! The lifecycle routes: bodies in, status and bodies out, each refusal its status.

use chrono::{TimeZone, Utc};
use tessera_app::lifecycle::{Hold, RolledBack, Validation};
use tessera_app::AppError;
use tessera_domain::{HoldId, HoldState, RedemptionFailure, RedemptionId, Role};

use crate::support::*;

const HOLD_ID: &str = "hld_33333333333333334444";
const REDEMPTION_ID: &str = "rdm_33333333333333335555";

fn hold() -> Hold {
    Hold {
        id: HoldId::parse(HOLD_ID).unwrap(),
        program_id: program_id(),
        ticket_id: ticket_id(),
        state: HoldState::Held,
        expires_at: Utc.timestamp_millis_opt(1_604_361_651_043).unwrap(),
        created_at: Utc.timestamp_millis_opt(1_604_361_351_043).unwrap(),
        remaining: 2,
    }
}

#[actix_web::test]
async fn validate_answers_valid_without_token_or_payload() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_validate()
        .times(1)
        .returning(|caller, request| {
            assert!(caller.is_none());
            assert_eq!(request.program_id, Some(program_id()));
            Ok(Validation {
                program_id: program_id(),
                ticket_id: ticket_id(),
                object_id: "iq__3ax1".to_owned(),
                group_addresses: vec![],
                remaining: 3,
            })
        });
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","includeProgramId":true}}"#);
    let reply = send(mocks, post_json("/v1/redeem/validate", None, &body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({"valid": true, "ticketId": TICKET_ID, "programId": PROGRAM_ID,
            "objectId": "iq__3ax1", "groupAddresses": [], "remaining": 3})
    );
}

#[actix_web::test]
async fn a_hold_is_created_with_its_ttl_and_answered_201() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_hold()
        .withf(|caller, _, ttl| caller.role == Role::Redeemer && ttl.seconds() == 120)
        .times(1)
        .returning(|_, _, _| Ok(hold()));
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","ttl":120}}"#);
    let reply = send(mocks, post_json("/v1/holds", Some(REDEEMER_KEY), &body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["id"], HOLD_ID);
    assert_eq!(reply.body["state"], "held");
    assert_eq!(reply.body["expiresAt"], "2020-11-03T00:00:51.043Z");
    assert_eq!(reply.body["remaining"], 2);
}

#[actix_web::test]
async fn a_hold_needs_a_key_and_a_ttl_in_range() {
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    send(Mocks::new(), post_json("/v1/holds", None, &body))
        .await
        .assert_error(401, "unauthorized");
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}","ttl":3601}}"#);
    let reply = send(
        Mocks::new(),
        post_json("/v1/holds", Some(REDEEMER_KEY), &body),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.message().contains("ttl"), "{}", reply.message());
}

#[actix_web::test]
async fn an_exhausted_ticket_refuses_a_hold_with_409() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_hold()
        .returning(|_, _, _| Err(AppError::Redemption(RedemptionFailure::TicketExhausted)));
    let body = format!(r#"{{"code":"ABC123","programId":"{PROGRAM_ID}"}}"#);
    send(mocks, post_json("/v1/holds", Some(REDEEMER_KEY), &body))
        .await
        .assert_error(409, "ticket_exhausted");
}

#[actix_web::test]
async fn confirming_an_inactive_hold_is_409_and_releasing_is_204() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_confirm_hold()
        .returning(|_, _| Err(AppError::HoldNotActive));
    let path = format!("/v1/holds/{HOLD_ID}/confirm");
    let reply = send(mocks, post_json(&path, Some(REDEEMER_KEY), "")).await;
    reply.assert_error(409, "hold_not_active");

    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_release_hold()
        .times(1)
        .returning(|_, _| Ok(()));
    let reply = send(mocks, delete(&format!("/v1/holds/{HOLD_ID}"), REDEEMER_KEY)).await;
    assert_eq!(reply.status, 204);

    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_get_hold()
        .times(1)
        .returning(|_, _| Ok(hold()));
    let reply = send(mocks, get(&format!("/v1/holds/{HOLD_ID}"), ADMIN_KEY)).await;
    assert_eq!(
        (reply.status.as_u16(), &reply.body["state"]),
        (200, &serde_json::json!("held"))
    );

    // A malformed id names nothing: 404 without calling the use case.
    send(Mocks::new(), get("/v1/holds/hld_nope", REDEEMER_KEY))
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn a_rollback_takes_an_optional_reason() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_rollback()
        .withf(|_, id, reason| {
            id.as_str() == REDEMPTION_ID && reason.as_ref().map(|r| r.as_str()) == Some("refund")
        })
        .times(1)
        .returning(|_, id, _| {
            Ok(RolledBack {
                redemption_id: id.clone(),
                ticket_id: ticket_id(),
                remaining: 1,
                rolled_back_at: Utc.timestamp_millis_opt(1_604_361_351_043).unwrap(),
            })
        });
    let path = format!("/v1/redemptions/{REDEMPTION_ID}/rollback");
    let reply = send(
        mocks,
        post_json(&path, Some(ADMIN_KEY), r#"{"reason":"refund"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({"redemptionId": REDEMPTION_ID, "ticketId": TICKET_ID,
            "remaining": 1, "rolledBackAt": "2020-11-02T23:55:51.043Z"})
    );

    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_rollback()
        .withf(|_, _, reason| reason.is_none())
        .returning(|_, _, _| Err(AppError::AlreadyRolledBack));
    send(mocks, post_json(&path, Some(ADMIN_KEY), ""))
        .await
        .assert_error(409, "already_rolled_back");

    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_rollback()
        .returning(|_, _, _| Err(AppError::RollbackNotAllowed));
    send(mocks, post_json(&path, Some(ADMIN_KEY), "{}"))
        .await
        .assert_error(409, "rollback_not_allowed");

    let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(201));
    send(Mocks::new(), post_json(&path, Some(ADMIN_KEY), &long))
        .await
        .assert_error(400, "invalid_request");
    assert!(RedemptionId::parse(REDEMPTION_ID).is_ok());
}
