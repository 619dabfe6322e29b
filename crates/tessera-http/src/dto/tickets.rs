use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::model::{TicketChanges, TicketView};
use tessera_app::usecases::{BatchRequest, IssueRequest, IssuedTicket};
use tessera_domain::{
    effective_limit, BatchSize, Code, Email, PresentedCode, RedemptionLimit, SignedCode, Subject,
    TicketLink, TicketState,
};
use utoipa::ToSchema;

use super::common::{payload, send_optional_secret, send_secret};
use crate::error::ApiError;
use crate::time;

/// `POST /v1/programs/{programId}/tickets`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssueTicketRequest {
    /// Redemption must then present it (case-insensitive); `""` means none.
    pub email: Option<String>,
    /// ≥ 1; the effective limit is min(this, the program's).
    pub max_redemptions: Option<i64>,
    /// The user this ticket belongs to (URL tickets).
    pub subject: Option<String>,
    /// Any JSON, ≤ 16 KiB serialized (else `413`); returned on redemption.
    #[schema(value_type = Option<Value>)]
    pub payload: Option<serde_json::Value>,
    /// Also return `signedCode`; default `false`.
    pub signed: Option<bool>,
    /// In a one-active-per-subject program, revoke the subject's active ticket
    /// (if any) and issue this one atomically, instead of `409
    /// subject_has_active_ticket`; default `false`.
    pub replace: Option<bool>,
    /// Use this code instead of a generated one (a shared promo code): without
    /// spaces and dashes, 4..64 of `A–Z a–z 0–9`, normalised by the program's
    /// alphabet; with `checkDigit`, it must end with a valid check character.
    /// Already in the tenant → `409 code_taken`.
    #[schema(value_type = Option<String>, example = "SUMMER25")]
    pub code: Option<PresentedCode>,
    /// ≥ 1: uses each distinct `redeemerId` may have.
    pub per_redeemer_limit: Option<i64>,
}

impl TryFrom<IssueTicketRequest> for IssueRequest {
    type Error = ApiError;

    fn try_from(body: IssueTicketRequest) -> Result<Self, ApiError> {
        Ok(IssueRequest {
            email: body
                .email
                .filter(|email| !email.trim().is_empty())
                .map(|email| Email::parse(&email))
                .transpose()?,
            max_redemptions: body
                .max_redemptions
                .map(RedemptionLimit::try_from)
                .transpose()?,
            subject: body.subject.map(Subject::try_from).transpose()?,
            payload: payload("payload", body.payload)?,
            signed: body.signed.unwrap_or(false),
            replace: body.replace.unwrap_or(false),
            code: body.code,
            per_redeemer_limit: body
                .per_redeemer_limit
                .map(|limit| {
                    RedemptionLimit::try_from(limit)
                        .map_err(|_| ApiError::invalid("perRedeemerLimit: must be at least 1"))
                })
                .transpose()?,
        })
    }
}

/// `POST /v1/programs/{programId}/tickets/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssueBatchRequest {
    /// How many tickets: 1..1000000.
    #[schema(minimum = 1, maximum = 1000000, example = 1000)]
    pub count: i64,
    /// ≥ 1, for every ticket; the effective limit is min(this, the program's).
    pub max_redemptions: Option<i64>,
    /// Any JSON, ≤ 16 KiB serialized (else `413`), for every ticket.
    #[schema(value_type = Option<Value>)]
    pub payload: Option<serde_json::Value>,
}

impl TryFrom<IssueBatchRequest> for BatchRequest {
    type Error = ApiError;

    fn try_from(body: IssueBatchRequest) -> Result<Self, ApiError> {
        Ok(BatchRequest {
            count: BatchSize::try_from(body.count)?,
            max_redemptions: body
                .max_redemptions
                .map(RedemptionLimit::try_from)
                .transpose()?,
            payload: payload("payload", body.payload)?,
        })
    }
}

/// A freshly issued ticket: the only time its `code` is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTicketResponse {
    pub ticket_id: String,
    pub program_id: String,
    /// The code: a secret, shown this once.
    #[serde(serialize_with = "send_secret")]
    #[schema(value_type = String)]
    pub code: Code,
    pub email: Option<String>,
    pub subject: Option<String>,
    /// The effective limit: min(the ticket's, the program's).
    pub max_redemptions: u32,
    /// `urlPrefix` + link token, when the program has a `urlPrefix`.
    #[serde(serialize_with = "send_optional_secret")]
    #[schema(value_type = Option<String>)]
    pub link: Option<TicketLink>,
    /// With `signed: true`: the code, `.`, and the unpadded base64url Ed25519
    /// signature (by a key of `/.well-known/jwks.json`) of the UTF-8 bytes
    /// `tessera-code-v1:<programId>:<code>`; accepted wherever a code is. `null`
    /// otherwise.
    #[serde(serialize_with = "send_optional_secret")]
    #[schema(value_type = Option<String>)]
    pub signed_code: Option<SignedCode>,
}

impl From<&IssuedTicket> for IssuedTicketResponse {
    fn from(issued: &IssuedTicket) -> Self {
        Self {
            ticket_id: issued.ticket_id.to_string(),
            program_id: issued.program_id.to_string(),
            code: issued.code.clone(),
            email: issued.email.as_ref().map(|email| email.as_str().to_owned()),
            subject: issued.subject.as_ref().map(|s| s.as_str().to_owned()),
            max_redemptions: issued.max_redemptions,
            link: issued.link.clone(),
            signed_code: issued.signed_code.clone(),
        }
    }
}

/// A ticket of a program (never its code).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketResponse {
    pub id: String,
    pub program_id: String,
    pub email: Option<String>,
    pub subject: Option<String>,
    /// The effective limit: min(the ticket's, the program's current one).
    pub max_redemptions: u32,
    /// Uses each distinct `redeemerId` may have; `null` when unlimited.
    pub per_redeemer_limit: Option<u32>,
    pub redemptions: u32,
    /// Live holds: uses reserved by `POST /v1/holds`, not yet confirmed.
    pub held: u32,
    /// Uses left, live holds counting as used.
    pub remaining: u32,
    /// `active`, `locked`, `disabled` or `revoked`.
    #[schema(example = "active")]
    pub state: &'static str,
    pub failed_attempts: u32,
    #[serde(serialize_with = "time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_redeemed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_failed_at: Option<DateTime<Utc>>,
    /// While `state` is `locked` after wrong emails: when the lock ends (absent
    /// for a lock only an admin can end).
    #[serde(
        serialize_with = "time::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub version: i64,
}

impl From<&TicketView> for TicketResponse {
    fn from(view: &TicketView) -> Self {
        let ticket = &view.ticket;
        Self {
            id: ticket.id.to_string(),
            program_id: ticket.program_id.to_string(),
            email: ticket.email.as_ref().map(|email| email.as_str().to_owned()),
            subject: ticket.subject.as_ref().map(|s| s.as_str().to_owned()),
            max_redemptions: effective_limit(ticket.max_redemptions, view.program_limit),
            per_redeemer_limit: ticket.per_redeemer_limit.map(|limit| limit.get()),
            redemptions: ticket.redemptions,
            held: view.held,
            remaining: view.remaining(),
            state: ticket.state.as_str(),
            failed_attempts: ticket.failed_attempts,
            last_redeemed_at: ticket.last_redeemed_at,
            last_failed_at: ticket.last_failed_at,
            locked_until: ticket
                .locked_until
                .filter(|_| ticket.state == tessera_domain::TicketState::Locked),
            created_at: ticket.created_at,
            version: ticket.version,
        }
    }
}

/// `GET /v1/programs/{programId}/tickets`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketList {
    pub tickets: Vec<TicketResponse>,
    pub start: u64,
    pub end: u64,
    pub total: u64,
}

/// `PATCH /v1/tickets/{ticketId}`: unlock / re-enable (`active`) or `disabled`,
/// and/or a refill: a new `maxRedemptions` of the ticket's own (≥ 1; the
/// effective limit stays min(this, the program's)). At least one is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateTicketRequest {
    /// `active` or `disabled`.
    #[schema(example = "disabled")]
    pub state: Option<String>,
    /// ≥ 1: the ticket's own limit.
    pub max_redemptions: Option<i64>,
}

impl TryFrom<UpdateTicketRequest> for TicketChanges {
    type Error = ApiError;

    fn try_from(body: UpdateTicketRequest) -> Result<Self, ApiError> {
        let state = body
            .state
            .map(|raw| match TicketState::parse(&raw) {
                Some(state @ (TicketState::Active | TicketState::Disabled)) => Ok(state),
                _ => Err(ApiError::invalid("state: must be active or disabled")),
            })
            .transpose()?;
        let max_redemptions = body
            .max_redemptions
            .map(RedemptionLimit::try_from)
            .transpose()?;
        if state.is_none() && max_redemptions.is_none() {
            return Err(ApiError::invalid(
                "state: give state, maxRedemptions or both",
            ));
        }
        Ok(TicketChanges {
            state,
            max_redemptions,
        })
    }
}
