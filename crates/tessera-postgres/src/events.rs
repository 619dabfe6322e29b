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

/// Deletes every event of `tenant`: for the redemption probe, whose random tenant
/// owns nothing else.
pub(crate) fn forget_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Outcome<()> {
    diesel::delete(events::table.filter(events::tenant_id.eq(tenant.as_str()))).execute(conn)?;
    Ok(())
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
