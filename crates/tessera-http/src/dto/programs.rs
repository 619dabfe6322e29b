use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_domain::{
    Alphabet, CodePattern, GroupAddresses, Label, MaxTickets, NewProgram, NtpClass, ObjectId,
    Program, ProgramChanges, RedemptionLimit, TicketLength, UrlPrefix, ValidityWindow,
};
use utoipa::ToSchema;

use super::common::{not_null, present};
use crate::error::ApiError;
use crate::time::{self, InputTime, TimeInput};

/// `POST /v1/programs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateProgramRequest {
    /// Free label, ≤ 200 chars.
    pub name: Option<String>,
    /// 1..256 chars: the target the tickets authorize.
    pub object_id: String,
    /// ≤ 64 entries; default `[]`.
    pub group_addresses: Option<Vec<String>>,
    /// 1..9; default 4.
    pub ntp_class: Option<i64>,
    /// ≥ 0, 0 = unlimited; default 0.
    pub max_tickets: Option<i64>,
    /// ≥ 1, per ticket; default 100.
    pub max_redemptions: Option<i64>,
    #[schema(value_type = TimeInput)]
    pub start_time: InputTime,
    /// Must be after `startTime`.
    #[schema(value_type = TimeInput)]
    pub end_time: InputTime,
    /// 4..64; default 6.
    pub ticket_length: Option<i64>,
    /// `alphanumeric` (default), `humane` or `numeric`.
    pub alphabet: Option<String>,
    /// Absolute http(s) URL; tickets then get a `link`.
    pub url_prefix: Option<String>,
    /// Default false.
    pub one_active_per_subject: Option<bool>,
    /// Whether redemptions may be rolled back; default true.
    pub allow_rollback: Option<bool>,
    /// ≤ 64 chars: `#` is one random character, every other character (of the
    /// alphabet, a dash or a space) is kept (`"TSR-####-####"`); `ticketLength`
    /// is then the number of `#`.
    #[schema(example = "TSR-####-####")]
    pub code_pattern: Option<String>,
    /// Codes end with a check character (Luhn mod N); default false.
    pub check_digit: Option<bool>,
}

impl TryFrom<CreateProgramRequest> for NewProgram {
    type Error = ApiError;

    fn try_from(body: CreateProgramRequest) -> Result<Self, ApiError> {
        let alphabet = body
            .alphabet
            .as_deref()
            .map(str::parse::<Alphabet>)
            .transpose()?
            .unwrap_or_default();
        let code_pattern = body
            .code_pattern
            .as_deref()
            .map(|raw| CodePattern::parse(raw, alphabet))
            .transpose()?;
        let explicit_length = body.ticket_length.map(TicketLength::try_from).transpose()?;
        let ticket_length = match (&code_pattern, explicit_length) {
            (Some(pattern), Some(length)) if pattern.ticket_length() != length => {
                return Err(ApiError::invalid(
                    "ticketLength: must be the number of # in codePattern (or left out)",
                ))
            }
            (Some(pattern), _) => pattern.ticket_length(),
            (None, length) => length.unwrap_or(TicketLength::DEFAULT),
        };
        Ok(NewProgram {
            name: body.name.map(Label::try_from).transpose()?,
            object_id: ObjectId::try_from(body.object_id)?,
            group_addresses: GroupAddresses::try_from(body.group_addresses.unwrap_or_default())?,
            ntp_class: body
                .ntp_class
                .map(NtpClass::try_from)
                .transpose()?
                .unwrap_or(NtpClass::DEFAULT),
            max_tickets: body
                .max_tickets
                .map(MaxTickets::try_from)
                .transpose()?
                .unwrap_or(MaxTickets::UNLIMITED),
            max_redemptions: body
                .max_redemptions
                .map(RedemptionLimit::try_from)
                .transpose()?
                .unwrap_or(RedemptionLimit::DEFAULT),
            window: ValidityWindow::new(body.start_time.0, body.end_time.0)?,
            ticket_length,
            alphabet,
            url_prefix: body.url_prefix.map(UrlPrefix::try_from).transpose()?,
            one_active_per_subject: body.one_active_per_subject.unwrap_or(false),
            allow_rollback: body.allow_rollback.unwrap_or(true),
            code_pattern,
            check_digit: body.check_digit.unwrap_or(false),
        })
    }
}

/// `PATCH /v1/programs/{programId}`: only the fields given change; `urlPrefix` and
/// `name` may be `null` to clear them. A patch that names no field is refused
/// (`400 invalid_request`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateProgramRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64)]
    pub max_tickets: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64)]
    pub max_redemptions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = TimeInput)]
    pub start_time: Option<Option<InputTime>>,
    /// Setting it on a suspended program reactivates it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = TimeInput)]
    pub end_time: Option<Option<InputTime>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub url_prefix: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool)]
    pub allow_rollback: Option<Option<bool>>,
}

impl TryFrom<UpdateProgramRequest> for ProgramChanges {
    type Error = ApiError;

    fn try_from(body: UpdateProgramRequest) -> Result<Self, ApiError> {
        let changes = ProgramChanges {
            max_tickets: not_null("maxTickets", body.max_tickets)?
                .map(MaxTickets::try_from)
                .transpose()?,
            max_redemptions: not_null("maxRedemptions", body.max_redemptions)?
                .map(RedemptionLimit::try_from)
                .transpose()?,
            start_time: not_null("startTime", body.start_time)?.map(|time| time.0),
            end_time: not_null("endTime", body.end_time)?.map(|time| time.0),
            url_prefix: body
                .url_prefix
                .map(|prefix| prefix.map(UrlPrefix::try_from).transpose())
                .transpose()?,
            name: body
                .name
                .map(|name| name.map(Label::try_from).transpose())
                .transpose()?,
            allow_rollback: not_null("allowRollback", body.allow_rollback)?,
        };
        if changes.is_empty() {
            return Err(ApiError::invalid(
                "The patch must set at least one of maxTickets, maxRedemptions, startTime, endTime, urlPrefix, name, allowRollback.",
            ));
        }
        Ok(changes)
    }
}

/// A program (an NTP instance).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgramResponse {
    #[schema(example = "prg_3xK9mQ2vTn8pLw4R1111")]
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    pub ntp_class: u8,
    pub max_tickets: u32,
    pub max_redemptions: u32,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-02T23:55:51.043Z")]
    pub start_time: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: DateTime<Utc>,
    pub ticket_length: u8,
    #[schema(example = "alphanumeric")]
    pub alphabet: &'static str,
    pub url_prefix: Option<String>,
    pub one_active_per_subject: bool,
    pub allow_rollback: bool,
    pub code_pattern: Option<String>,
    pub check_digit: bool,
    /// `active` or `suspended`.
    #[schema(example = "active")]
    pub state: &'static str,
    pub issued_tickets: u32,
    pub version: i64,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<&Program> for ProgramResponse {
    fn from(program: &Program) -> Self {
        Self {
            id: program.id.to_string(),
            tenant_id: program.tenant_id.to_string(),
            name: program.name.as_ref().map(|name| name.as_str().to_owned()),
            object_id: program.object_id.as_str().to_owned(),
            group_addresses: program.group_addresses.as_slice().to_vec(),
            ntp_class: program.ntp_class.get(),
            max_tickets: program.max_tickets.get(),
            max_redemptions: program.max_redemptions.get(),
            start_time: program.window.start(),
            end_time: program.window.end(),
            ticket_length: program.ticket_length.get(),
            alphabet: program.alphabet.as_str(),
            url_prefix: program
                .url_prefix
                .as_ref()
                .map(|url| url.as_str().to_owned()),
            one_active_per_subject: program.one_active_per_subject,
            allow_rollback: program.allow_rollback,
            code_pattern: program
                .code_pattern
                .as_ref()
                .map(|pattern| pattern.as_str().to_owned()),
            check_digit: program.check_digit,
            state: program.state.as_str(),
            issued_tickets: program.issued_tickets,
            version: program.version,
            created_at: program.created_at,
            updated_at: program.updated_at,
        }
    }
}

/// `GET /v1/programs`: oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramList {
    pub programs: Vec<ProgramResponse>,
    pub start: u64,
    pub end: u64,
    pub total: u64,
}
