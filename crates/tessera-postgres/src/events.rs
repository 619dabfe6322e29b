//! The append-only event history. Every writer calls [`record`] on the connection
//! of its own transaction, so an event exists iff its change committed.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl};
use tessera_domain::{EventId, EventType, ProgramId, TenantId, TicketId};

use crate::error::Outcome;
use crate::schema::events;

#[derive(Debug)]
pub(crate) struct Event<'a> {
    pub tenant: &'a TenantId,
    pub kind: EventType,
    pub at: DateTime<Utc>,
    pub program: Option<&'a ProgramId>,
    pub ticket: Option<&'a TicketId>,
    pub data: serde_json::Value,
}

/// The tenant the equal-time probe writes its failure events under: a well-formed
/// id no tenant is ever given (generated ids lead with their creation time, and
/// `1` is base58's zero: this one was created in 1970), so nothing reads, rolls up
/// or delivers its events.
pub const PROBE_TENANT: &str = "ten_11111111111111111111";

/// [`PROBE_TENANT`] as the id type, parsed once.
pub(crate) fn probe_tenant() -> TenantId {
    static PARSED: std::sync::OnceLock<TenantId> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| TenantId::parse(PROBE_TENANT).expect("PROBE_TENANT is a well-formed id"))
        .clone()
}

/// Deletes the probe's events (event maintenance runs this with retention). The
/// probe leaves them rather than deleting each in its own transaction, which was
/// a statement more than the failure it imitates (+13 % at p50, measured).
pub(crate) fn forget_probe_events(conn: &mut PgConnection) -> Outcome<usize> {
    Ok(diesel::delete(events::table.filter(events::tenant_id.eq(PROBE_TENANT))).execute(conn)?)
}

pub(crate) fn record(conn: &mut PgConnection, event: Event<'_>) -> Outcome<()> {
    diesel::insert_into(events::table)
        .values((
            events::tenant_id.eq(event.tenant.as_str()),
            events::id.eq(EventId::generate().as_str()),
            events::event_type.eq(event.kind.as_str()),
            events::created_at.eq(event.at),
            events::program_id.eq(event.program.map(ProgramId::as_str)),
            events::ticket_id.eq(event.ticket.map(TicketId::as_str)),
            events::data.eq(event.data),
        ))
        .execute(conn)?;
    Ok(())
}
