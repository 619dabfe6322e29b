//! Rows as the database returns them, and their checked conversion into domain
//! values. A row that fails a domain rule is reported as corrupt, never trusted.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Nullable};
use diesel::{Queryable, QueryableByName, Selectable};
use tessera_app::model::{ApiKey, TicketView};
use tessera_domain::{
    Alphabet, ApiKeyId, CodePattern, Email, GroupAddresses, Label, MaxTickets, NtpClass, ObjectId,
    Payload, Program, ProgramId, ProgramState, RedemptionLimit, Role, StandaloneTicket,
    StandaloneTicketId, Subject, TenantId, Ticket, TicketId, TicketLength, TicketState, UrlPrefix,
    Uses, ValidityWindow,
};

use crate::error::{corrupt, Outcome};
use crate::schema::{api_keys, programs, standalone_tickets, tickets};

fn optional<T, E: std::fmt::Display>(
    what: &str,
    raw: Option<String>,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Outcome<Option<T>> {
    raw.map(parse).transpose().map_err(|e| corrupt(what, e))
}

fn count(what: &str, raw: i64) -> Outcome<u32> {
    u32::try_from(raw).map_err(|e| corrupt(what, e))
}

fn payload(what: &str, raw: Option<String>) -> Outcome<Option<Payload>> {
    optional(what, raw, Payload::from_json_text)
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(Pg))]
pub(crate) struct ApiKeyRow {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl ApiKeyRow {
    pub fn into_domain(self) -> Outcome<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::parse(&self.id).map_err(|e| corrupt("api key", e))?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|e| corrupt("api key", e))?,
            name: Label::try_from(self.name).map_err(|e| corrupt("api key", e))?,
            role: Role::parse(&self.role).ok_or_else(|| corrupt("api key", "unknown role"))?,
            created_at: self.created_at,
        })
    }
}

/// Read by the typed builder, and by name from the `RETURNING *` of the batch
/// reservation.
#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = programs, check_for_backend(Pg))]
pub(crate) struct ProgramRow {
    pub tenant_id: String,
    pub id: String,
    pub name: Option<String>,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    pub ntp_class: i16,
    pub max_tickets: i64,
    pub max_redemptions: i64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub ticket_length: i16,
    pub alphabet: String,
    pub url_prefix: Option<String>,
    pub one_active_per_subject: bool,
    pub allow_rollback: bool,
    pub state: String,
    pub issued_tickets: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub code_pattern: Option<String>,
    pub check_digit: bool,
}

impl ProgramRow {
    pub fn into_domain(self) -> Outcome<Program> {
        let bad = |e: tessera_domain::DomainError| corrupt("program", e);
        let alphabet = Alphabet::from_str(&self.alphabet).map_err(bad)?;
        Ok(Program {
            id: ProgramId::parse(&self.id).map_err(bad)?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(bad)?,
            name: optional("program", self.name, Label::try_from)?,
            object_id: ObjectId::try_from(self.object_id).map_err(bad)?,
            group_addresses: GroupAddresses::try_from(self.group_addresses).map_err(bad)?,
            ntp_class: NtpClass::try_from(i64::from(self.ntp_class)).map_err(bad)?,
            max_tickets: MaxTickets::try_from(self.max_tickets).map_err(bad)?,
            max_redemptions: RedemptionLimit::try_from(self.max_redemptions).map_err(bad)?,
            window: ValidityWindow::new(self.start_time, self.end_time).map_err(bad)?,
            ticket_length: TicketLength::try_from(i64::from(self.ticket_length)).map_err(bad)?,
            alphabet,
            url_prefix: optional("program", self.url_prefix, UrlPrefix::try_from)?,
            one_active_per_subject: self.one_active_per_subject,
            allow_rollback: self.allow_rollback,
            code_pattern: optional("program", self.code_pattern, |raw| {
                CodePattern::parse(&raw, alphabet)
            })?,
            check_digit: self.check_digit,
            state: ProgramState::parse(&self.state)
                .ok_or_else(|| corrupt("program", "unknown state"))?,
            issued_tickets: count("program", self.issued_tickets)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A ticket joined with its program's limit, which `remaining` depends on. Selected
/// from `tickets` joined with `programs` (see `stores::tickets::ticket_views`), or
/// read by name from a statement listing [`ticket_view_columns`].
#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = tickets, check_for_backend(Pg))]
pub(crate) struct TicketRow {
    pub tenant_id: String,
    pub id: String,
    pub program_id: String,
    pub email: Option<String>,
    pub subject: Option<String>,
    pub max_redemptions: Option<i64>,
    pub redemptions: i64,
    pub state: String,
    pub failed_attempts: i64,
    pub payload: Option<String>,
    pub last_redeemed_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: i64,
    pub per_redeemer_limit: Option<i64>,
    pub locked_until: Option<DateTime<Utc>>,
    #[diesel(
        sql_type = BigInt,
        select_expression = programs::max_redemptions,
        select_expression_type = programs::max_redemptions
    )]
    pub program_max_redemptions: i64,
    /// Live holds, counted from `holds` (the ticket's `held` counter may still
    /// include expired holds nobody has reaped).
    #[diesel(
        sql_type = BigInt,
        select_expression = diesel::dsl::sql::<BigInt>(LIVE_HOLDS),
        select_expression_type = diesel::expression::SqlLiteral<BigInt>
    )]
    pub held: i64,
}

/// The ticket's live holds as a scalar subquery over `tickets` (the table's own
/// name, so it works both in the typed views and as `t` below).
pub(crate) const LIVE_HOLDS: &str = "(SELECT count(*) FROM holds h \
    WHERE h.tenant_id = tickets.tenant_id AND h.ticket_id = tickets.id \
    AND h.state = 'held' AND h.expires_at > now())";

impl TicketRow {
    pub fn into_view(self) -> Outcome<TicketView> {
        let bad = |e: tessera_domain::DomainError| corrupt("ticket", e);
        let program_limit = RedemptionLimit::try_from(self.program_max_redemptions).map_err(bad)?;
        let ticket = Ticket {
            id: TicketId::parse(&self.id).map_err(bad)?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(bad)?,
            program_id: ProgramId::parse(&self.program_id).map_err(bad)?,
            email: optional("ticket", self.email, |raw| Email::parse(&raw))?,
            subject: optional("ticket", self.subject, Subject::try_from)?,
            max_redemptions: self
                .max_redemptions
                .map(RedemptionLimit::try_from)
                .transpose()
                .map_err(bad)?,
            per_redeemer_limit: self
                .per_redeemer_limit
                .map(RedemptionLimit::try_from)
                .transpose()
                .map_err(bad)?,
            redemptions: count("ticket", self.redemptions)?,
            state: TicketState::parse(&self.state)
                .ok_or_else(|| corrupt("ticket", "unknown state"))?,
            failed_attempts: count("ticket", self.failed_attempts)?,
            payload: payload("ticket", self.payload)?,
            last_redeemed_at: self.last_redeemed_at,
            last_failed_at: self.last_failed_at,
            locked_until: self.locked_until,
            created_at: self.created_at,
            version: self.version,
        };
        Ok(TicketView {
            ticket,
            program_limit,
            held: count("ticket", self.held)?,
        })
    }
}

/// Columns of a ticket in the order `TicketRow` reads them, prefixed by `t.`, with
/// the program's limit from `p.`: for the hand-written statements that return a
/// view. `now_param` is the statement's placeholder number for the request's
/// instant: live holds are counted against that bound value, not `now()`, because
/// Citus refuses non-IMMUTABLE functions in a RETURNING clause.
pub(crate) fn ticket_view_columns(now_param: usize) -> String {
    format!(
        "t.tenant_id, t.id, t.program_id, t.email, \
         t.subject, t.max_redemptions, t.redemptions, t.state, t.failed_attempts, t.payload, \
         t.last_redeemed_at, t.last_failed_at, t.created_at, t.version, t.per_redeemer_limit, \
         t.locked_until, p.max_redemptions AS program_max_redemptions, \
         (SELECT count(*) FROM holds h WHERE h.tenant_id = t.tenant_id AND h.ticket_id = t.id \
         AND h.state = 'held' AND h.expires_at > ${now_param}::timestamptz) AS held"
    )
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = standalone_tickets, check_for_backend(Pg))]
pub(crate) struct StandaloneRow {
    pub tenant_id: String,
    pub id: String,
    pub name: Option<String>,
    pub permissions: Option<String>,
    pub payload: Option<String>,
    pub total_uses: i64,
    pub uses_left: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl StandaloneRow {
    pub fn into_domain(self) -> Outcome<StandaloneTicket> {
        let bad = |e: tessera_domain::DomainError| corrupt("standalone ticket", e);
        Ok(StandaloneTicket {
            id: StandaloneTicketId::parse(&self.id).map_err(bad)?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(bad)?,
            name: optional("standalone ticket", self.name, Label::try_from)?,
            permissions: payload("standalone ticket", self.permissions)?,
            payload: payload("standalone ticket", self.payload)?,
            total_uses: Uses::try_from(self.total_uses).map_err(bad)?,
            uses_left: self
                .uses_left
                .map(|left| count("standalone ticket", left))
                .transpose()?,
            expires_at: self.expires_at,
            created_at: self.created_at,
        })
    }
}

/// What a consumed standalone ticket reports.
#[derive(Debug, QueryableByName)]
pub(crate) struct StandaloneUseRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub uses_left: Option<i64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    pub payload: Option<String>,
}

impl StandaloneUseRow {
    pub fn uses_left(&self) -> Outcome<Option<u32>> {
        self.uses_left
            .map(|left| count("standalone ticket", left))
            .transpose()
    }

    pub fn into_payload(self) -> Outcome<Option<Payload>> {
        payload("standalone ticket", self.payload)
    }
}

/// A `count(*)` as a page's total.
pub(crate) fn total(count: i64) -> u64 {
    u64::try_from(count).unwrap_or_default()
}

/// A `count(*)` read by name from a hand-written statement.
#[derive(Debug, QueryableByName)]
pub(crate) struct Total {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

impl Total {
    pub fn get(&self) -> u64 {
        total(self.total)
    }
}
