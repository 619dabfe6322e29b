use serde::{Deserialize, Serialize};
use tessera_app::usecases::{RedeemRequest, Redemption};
use tessera_app::AppError;
use tessera_domain::{ProgramId, TenantId};
use utoipa::ToSchema;

use super::common::RawJson;
use crate::error::ApiError;

/// `POST /v1/redeem`. Name the program by `programId` (alias `ntpId`), by
/// `tenantId` + `programId`, or by `issuer`; a request that names none → `400`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedeemRequestBody {
    /// The code (a secret).
    pub code: String,
    /// Alias: `ntpId`.
    #[serde(alias = "ntpId")]
    pub program_id: Option<String>,
    pub tenant_id: Option<String>,
    /// `/otp/ntp/<tenantId>/<programId>`.
    #[schema(example = "/otp/ntp/ten_3xK9mQ2vTn8pLw4R/prg_3xK9mQ2vTn8pLw4R")]
    pub issuer: Option<String>,
    /// Required when the ticket is bound to an email; `""` means none.
    pub email: Option<String>,
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
        // An id that cannot exist fails like an unknown code: nothing is revealed.
        let invalid_code = |_| ApiError::from(AppError::InvalidCode);
        let program_id = ProgramId::parse(program).map_err(invalid_code)?;
        let tenant_id = tenant
            .map(TenantId::parse)
            .transpose()
            .map_err(invalid_code)?;
        Ok(ResolvedRedeem {
            request: RedeemRequest {
                program_id,
                tenant_id,
                code: body.code,
                email: body.email.filter(|email| !email.trim().is_empty()),
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
    pub remaining: u32,
    pub group_addresses: Vec<String>,
    /// The ticket's payload as issued, or `null`.
    #[schema(value_type = Option<Value>)]
    pub payload: RawJson,
}

impl RedeemResponse {
    pub fn new(redemption: Redemption, include_program_id: bool) -> Self {
        Self {
            object_id: redemption.object_id,
            program_id: include_program_id.then(|| redemption.program_id.to_string()),
            ticket_id: redemption.ticket_id.to_string(),
            remaining: redemption.remaining,
            group_addresses: redemption.group_addresses,
            payload: RawJson(redemption.payload),
        }
    }
}
