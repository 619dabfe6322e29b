//! Bodies of the redemption lifecycle: validate, holds, rollback.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::lifecycle::{Hold, RolledBack, Validation};
use tessera_domain::{HoldTtl, PresentedCode, RollbackReason};
use utoipa::ToSchema;

use super::redeem::{RedeemRequestBody, ResolvedRedeem};
use crate::error::ApiError;
use crate::time;

/// `POST /v1/holds`: the `/v1/redeem` body plus `ttl`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HoldRequestBody {
    /// The code, or a `signedCode` as issued (a secret).
    #[schema(value_type = String)]
    pub code: PresentedCode,
    /// Alias: `ntpId`.
    #[serde(alias = "ntpId")]
    pub program_id: Option<String>,
    pub tenant_id: Option<String>,
    pub issuer: Option<String>,
    pub email: Option<String>,
    /// Who holds (1..256 chars), for tickets with `perRedeemerLimit`: the hold
    /// claims one of that redeemer's uses.
    pub redeemer_id: Option<String>,
    #[serde(alias = "includeNTPId")]
    pub include_program_id: Option<bool>,
    /// Seconds the hold reserves its use: 1..3600, default 300.
    #[schema(example = 300)]
    pub ttl: Option<i64>,
}

impl TryFrom<HoldRequestBody> for (ResolvedRedeem, HoldTtl) {
    type Error = ApiError;

    fn try_from(body: HoldRequestBody) -> Result<Self, ApiError> {
        let ttl = body
            .ttl
            .map(HoldTtl::try_from)
            .transpose()?
            .unwrap_or(HoldTtl::DEFAULT);
        let resolved = ResolvedRedeem::try_from(RedeemRequestBody {
            code: body.code,
            program_id: body.program_id,
            tenant_id: body.tenant_id,
            issuer: body.issuer,
            email: body.email,
            redeemer_id: body.redeemer_id,
            include_program_id: body.include_program_id,
        })?;
        Ok((resolved, ttl))
    }
}

/// `POST /v1/redeem/validate` success: the code would redeem now.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationResponse {
    /// Always `true` (a code that would not redeem gets the redeem error).
    pub valid: bool,
    pub ticket_id: String,
    /// Present only when the request asked `includeProgramId: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_id: Option<String>,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    /// Uses left now, live holds counting as used.
    pub remaining: u32,
}

impl ValidationResponse {
    pub fn new(validation: Validation, include_program_id: bool) -> Self {
        Self {
            valid: true,
            ticket_id: validation.ticket_id.to_string(),
            program_id: include_program_id.then(|| validation.program_id.to_string()),
            object_id: validation.object_id,
            group_addresses: validation.group_addresses,
            remaining: validation.remaining,
        }
    }
}

/// A hold: one use reserved until `expiresAt`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldResponse {
    /// `hld_...`
    pub id: String,
    pub ticket_id: String,
    pub program_id: String,
    /// `held`, `confirmed`, `released` or `expired`.
    #[schema(example = "held")]
    pub state: &'static str,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, example = "2026-11-02T23:55:51.043Z")]
    pub expires_at: DateTime<Utc>,
    /// The ticket's uses left, live holds counting as used.
    pub remaining: u32,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, example = "2026-11-02T23:50:51.043Z")]
    pub created_at: DateTime<Utc>,
}

impl From<Hold> for HoldResponse {
    fn from(hold: Hold) -> Self {
        Self {
            id: hold.id.to_string(),
            ticket_id: hold.ticket_id.to_string(),
            program_id: hold.program_id.to_string(),
            state: hold.state.as_str(),
            expires_at: hold.expires_at,
            remaining: hold.remaining,
            created_at: hold.created_at,
        }
    }
}

/// `POST /v1/redemptions/{id}/rollback`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollbackRequestBody {
    /// Why (≤ 200 characters); recorded in the `ticket.redemption_rolled_back` event.
    pub reason: Option<String>,
}

impl TryFrom<RollbackRequestBody> for Option<RollbackReason> {
    type Error = ApiError;

    fn try_from(body: RollbackRequestBody) -> Result<Self, ApiError> {
        Ok(body.reason.map(RollbackReason::try_from).transpose()?)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackResponse {
    pub redemption_id: String,
    pub ticket_id: String,
    /// The ticket's uses left after the use was given back.
    pub remaining: u32,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, example = "2026-11-02T23:55:51.043Z")]
    pub rolled_back_at: DateTime<Utc>,
}

impl From<RolledBack> for RollbackResponse {
    fn from(done: RolledBack) -> Self {
        Self {
            redemption_id: done.redemption_id.to_string(),
            ticket_id: done.ticket_id.to_string(),
            remaining: done.remaining,
            rolled_back_at: done.rolled_back_at,
        }
    }
}
