//! The one error type of the adapter and its JSON shape:
//! `{"error": {"code": "<snake_case>", "message": "<human sentence>"}}`.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tessera_app::AppError;
use tessera_domain::{DomainError, RedemptionFailure};
use utoipa::ToSchema;

/// Seconds a client should wait before retrying after `503 unavailable`.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `invalid_request`, `not_found`, `invalid_code`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// A human sentence; validation errors name the offending field first.
    #[schema(example = "ticketLength: must be between 4 and 64")]
    pub message: String,
}

/// An error as the client sees it: a status, a code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400 invalid_request`; the message should name the offending field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid API key is required: send Authorization: Bearer <apiKey>.",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This API key's role does not allow that.",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// `429 too_many_attempts` with `Retry-After: <seconds>`.
    pub fn too_many_attempts(retry_after_seconds: u32) -> Self {
        Self {
            retry_after: Some(retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("Too many failed attempts; retry in {retry_after_seconds} seconds."),
            )
        }
    }

    /// `503 unavailable` for load shedding: the excess of a burst, told to come
    /// back in a second (the database itself is fine).
    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is busy; retry in a second.",
            )
        }
    }

    /// `409 idempotency_in_progress` with `Retry-After`: the first request with
    /// this `Idempotency-Key` is still running.
    pub fn idempotency_in_progress() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            )
        }
    }

    /// `408 request_timeout`: the body did not arrive in time.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        )
    }

    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is temporarily unavailable; retry shortly.",
            )
        }
    }

    /// `500 internal` with a generic message; `detail` goes to the log only, so it
    /// must never carry a secret.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "An internal error occurred.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(self.body())
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        // DomainError displays as "<field>: <rule>", naming the field.
        Self::invalid(error.to_string())
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Invalid(domain) => domain.into(),
            AppError::Unauthorized => Self::unauthorized(),
            AppError::Forbidden => Self::forbidden(),
            AppError::NotFound => Self::not_found(),
            AppError::InvalidCode => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_code",
                "The code is not valid.",
            ),
            AppError::Redemption(reason) => {
                let status = if reason == RedemptionFailure::TicketNotFound {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::CONFLICT
                };
                Self::new(status, reason.code(), reason.message())
            }
            AppError::MaxTicketsReached => Self::new(
                StatusCode::CONFLICT,
                "max_tickets_reached",
                "The program or tenant has reached its ticket cap.",
            ),
            AppError::ProgramNotActive => Self::new(
                StatusCode::CONFLICT,
                "program_not_active",
                "The program is suspended or has ended.",
            ),
            AppError::VersionConflict => Self::new(
                StatusCode::CONFLICT,
                "version_conflict",
                "The resource changed since that version (If-Match).",
            ),
            AppError::SubjectHasActiveTicket => Self::new(
                StatusCode::CONFLICT,
                "subject_has_active_ticket",
                "This subject already has an active ticket in the program.",
            ),
            AppError::HoldNotActive => Self::new(
                StatusCode::CONFLICT,
                "hold_not_active",
                "The hold expired, was released or was confirmed.",
            ),
            AppError::AlreadyRolledBack => Self::new(
                StatusCode::CONFLICT,
                "already_rolled_back",
                "This redemption was already rolled back.",
            ),
            AppError::RollbackNotAllowed => Self::new(
                StatusCode::CONFLICT,
                "rollback_not_allowed",
                "The program does not allow rolling back redemptions (allowRollback).",
            ),
            error @ AppError::CodeTaken { .. } => {
                Self::new(StatusCode::CONFLICT, "code_taken", error.to_string())
            }
            AppError::MistypedCode => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_code",
                "The code is mistyped.",
            ),
            AppError::TooManyAttempts {
                retry_after_seconds,
            } => Self::too_many_attempts(retry_after_seconds),
            AppError::Unavailable => Self::unavailable(),
            AppError::Internal(detail) => Self::internal(detail),
        }
    }
}
