//! Every AppError variant maps to exactly one status and code.

use tessera_app::AppError;
use tessera_domain::{DomainError, RedemptionFailure};

use crate::support::*;

async fn get_program_failing_with(error: AppError) -> Reply {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_get_program()
        .times(1)
        .returning(move |_, _| Err(error.clone()));
    send(mocks, get(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY)).await
}

#[actix_web::test]
async fn every_app_error_has_its_status_and_code() {
    let cases = [
        (
            AppError::Invalid(DomainError::new("ticketLength", "is too short")),
            400,
            "invalid_request",
        ),
        (AppError::Unauthorized, 401, "unauthorized"),
        (AppError::Forbidden, 403, "forbidden"),
        (AppError::NotFound, 404, "not_found"),
        (AppError::InvalidCode, 404, "invalid_code"),
        (
            AppError::Redemption(RedemptionFailure::TicketNotFound),
            404,
            "ticket_not_found",
        ),
        (AppError::MaxTicketsReached, 409, "max_tickets_reached"),
        (AppError::ProgramNotActive, 409, "program_not_active"),
        (AppError::VersionConflict, 409, "version_conflict"),
        (
            AppError::SubjectHasActiveTicket,
            409,
            "subject_has_active_ticket",
        ),
        (
            AppError::TooManyAttempts {
                retry_after_seconds: 30,
            },
            429,
            "too_many_attempts",
        ),
        (AppError::Unavailable, 503, "unavailable"),
        (
            AppError::Internal("db exploded".to_owned()),
            500,
            "internal",
        ),
    ];
    for (error, status, code) in cases {
        get_program_failing_with(error)
            .await
            .assert_error(status, code);
    }
}

#[actix_web::test]
async fn every_redemption_reason_other_than_not_found_is_a_conflict() {
    for reason in [
        RedemptionFailure::TicketExhausted,
        RedemptionFailure::TicketRevoked,
        RedemptionFailure::TicketDisabled,
        RedemptionFailure::TicketLocked,
        RedemptionFailure::EmailMismatch,
        RedemptionFailure::ProgramSuspended,
        RedemptionFailure::ProgramNotStarted,
        RedemptionFailure::ProgramEnded,
    ] {
        let reply = get_program_failing_with(AppError::Redemption(reason)).await;
        reply.assert_error(409, reason.code());
        assert_eq!(reply.message(), reason.message());
    }
}

#[actix_web::test]
async fn validation_errors_name_the_field() {
    let reply = get_program_failing_with(AppError::Invalid(DomainError::new(
        "ticketLength",
        "is too short for maxTickets",
    )))
    .await;
    assert_eq!(reply.message(), "ticketLength: is too short for maxTickets");
}

#[actix_web::test]
async fn unavailable_sets_retry_after() {
    let reply = get_program_failing_with(AppError::Unavailable).await;
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[actix_web::test]
async fn internal_errors_hide_their_detail() {
    let reply = get_program_failing_with(AppError::Internal("secret detail".to_owned())).await;
    reply.assert_error(500, "internal");
    assert!(!reply.text.contains("secret detail"));
}

#[actix_web::test]
async fn a_panicking_use_case_is_a_500_not_a_crash() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_get_program()
        .returning(|_, _| panic!("boom"));
    let reply = send(mocks, get(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY)).await;
    reply.assert_error(500, "internal");
}
