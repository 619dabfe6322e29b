use serde::{Deserialize, Serialize};
use tessera_app::model::AccessToken;
use tessera_app::usecases::{RedeemRequest, Redemption};
use tessera_domain::{PresentedCode, ProgramId, TenantId};
use utoipa::ToSchema;

use super::common::{send_secret, RawJson};
use crate::error::ApiError;

/// `POST /v1/redeem`. Name the program by `programId` (alias `ntpId`), by
/// `tenantId` + `programId`, or by `issuer`; a request that names none → `400`.
/// A malformed id fails like an unknown code (and counts as a failed attempt).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedeemRequestBody {
    /// The code, or a `signedCode` as issued (a secret).
    #[schema(value_type = String)]
    pub code: PresentedCode,
    /// Alias: `ntpId`.
    #[serde(alias = "ntpId")]
    pub program_id: Option<String>,
    pub tenant_id: Option<String>,
    /// `/otp/ntp/<tenantId>/<programId>`.
    #[schema(example = "/otp/ntp/ten_3xK9mQ2vTn8pLw4R1111/prg_3xK9mQ2vTn8pLw4R1111")]
    pub issuer: Option<String>,
    /// Required when the ticket is bound to an email; `""` means none.
    pub email: Option<String>,
    /// 1..256 chars: who redeems, for tickets with `perRedeemerLimit`.
    pub redeemer_id: Option<String>,
    /// Include `programId` in the answer. Alias: `includeNTPId`.
    #[serde(alias = "includeNTPId")]
    pub include_program_id: Option<bool>,
}

/// A redemption request with its program resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRedeem {
    pub request: RedeemRequest,
    pub include_program_id: bool,
}

const ISSUER_PREFIX: &str = "/otp/ntp/";

/// The email as presented, `None` when blank. It is compared, never parsed as an
/// address (a wrong one is a failed attempt, not a bad request), but it reaches the
/// database as a parameter, which cannot hold NUL or other control characters.
fn presented_email(email: Option<String>) -> Result<Option<String>, ApiError> {
    match email {
        Some(email) if email.chars().any(char::is_control) => Err(ApiError::invalid(
            "email: must not contain control characters",
        )),
        Some(email) if email.chars().count() > 320 => {
            Err(ApiError::invalid("email: must be at most 320 characters"))
        }
        email => Ok(email.filter(|email| !email.trim().is_empty())),
    }
}

/// `(tenantId, programId)` of an issuer string, unparsed.
fn split_issuer(issuer: &str) -> Result<(&str, &str), ApiError> {
    issuer
        .trim()
        .strip_prefix(ISSUER_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(tenant, program)| {
            !tenant.is_empty() && !program.is_empty() && !program.contains('/')
        })
        .ok_or_else(|| ApiError::invalid("issuer: must be /otp/ntp/<tenantId>/<programId>"))
}

impl TryFrom<RedeemRequestBody> for ResolvedRedeem {
    type Error = ApiError;

    fn try_from(body: RedeemRequestBody) -> Result<Self, ApiError> {
        let (tenant, program) =
            match body.issuer.as_deref() {
                Some(issuer) => {
                    let (tenant, program) = split_issuer(issuer)?;
                    if body
                        .program_id
                        .as_deref()
                        .is_some_and(|named| named != program)
                    {
                        return Err(ApiError::invalid("programId: does not match the issuer"));
                    }
                    if body
                        .tenant_id
                        .as_deref()
                        .is_some_and(|named| named != tenant)
                    {
                        return Err(ApiError::invalid("tenantId: does not match the issuer"));
                    }
                    (Some(tenant), program)
                }
                None => match body.program_id.as_deref() {
                    Some(program) => (body.tenant_id.as_deref(), program),
                    None => return Err(ApiError::invalid(
                        "programId: the request must name the program (programId, ntpId or issuer)",
                    )),
                },
            };
        // An id that cannot exist names nothing, but the use case still decides:
        // it fails like an unknown program and counts as a failed attempt, so
        // guessing ids is throttled like guessing codes. A malformed tenant id makes
        // the whole name unusable, never an unchecked one.
        let tenant_id = tenant.map(TenantId::parse).transpose();
        let (program_id, tenant_id) = match (ProgramId::parse(program), tenant_id) {
            (Ok(program_id), Ok(tenant_id)) => (Some(program_id), tenant_id),
            _ => (None, None),
        };
        Ok(ResolvedRedeem {
            request: RedeemRequest {
                program_id,
                tenant_id,
                code: body.code,
                email: presented_email(body.email)?,
                redeemer_id: body
                    .redeemer_id
                    .map(tessera_domain::RedeemerId::try_from)
                    .transpose()?,
                client: None,
            },
            include_program_id: body.include_program_id.unwrap_or(false),
        })
    }
}

/// What a successful redemption grants.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeemResponse {
    #[schema(example = "iq__3ax1")]
    pub object_id: String,
    /// Present only when the request asked `includeProgramId: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_id: Option<String>,
    pub ticket_id: String,
    /// `rdm_...`: this redemption, for `POST /v1/redemptions/{id}/rollback`.
    pub redemption_id: String,
    pub remaining: u32,
    pub group_addresses: Vec<String>,
    /// The ticket's payload as issued, or `null`.
    #[schema(value_type = Option<Value>)]
    pub payload: RawJson,
    /// A JWT (`alg: EdDSA`, `kid` in its header) with claims `iss`, `sub` (ticket
    /// id), `tid`, `pid`, `obj`, `grp`, `iat`, `exp`, `jti`; verify it with the keys
    /// of `/.well-known/jwks.json`.
    #[schema(value_type = String, example = "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9...")]
    #[serde(serialize_with = "send_secret")]
    pub access_token: AccessToken,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the access token stays valid.
    #[schema(example = 3600)]
    pub expires_in: u32,
}

impl RedeemResponse {
    pub fn new(redemption: Redemption, include_program_id: bool) -> Self {
        let Redemption {
            grant,
            access_token,
        } = redemption;
        Self {
            object_id: grant.object_id,
            program_id: include_program_id.then(|| grant.program_id.to_string()),
            ticket_id: grant.ticket_id.to_string(),
            redemption_id: grant.redemption_id.to_string(),
            remaining: grant.remaining,
            group_addresses: grant.group_addresses,
            payload: RawJson(grant.payload),
            expires_in: access_token.expires_in_seconds(),
            access_token,
            token_type: "Bearer",
        }
    }
}
