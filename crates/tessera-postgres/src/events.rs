//! The append-only event history. Every writer calls [`record`] on the connection
//! of its own transaction, so an event exists iff its change committed.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Jsonb, Nullable, Text, Timestamptz};
use diesel::{sql_query, PgConnection, RunQueryDsl};
use tessera_domain::{EventId, EventType, ProgramId, TenantId, TicketId};

use crate::error::Outcome;

#[derive(Debug)]
pub(crate) struct Event<'a> {
    pub tenant: &'a TenantId,
    pub kind: EventType,
    pub at: DateTime<Utc>,
    pub program: Option<&'a ProgramId>,
    pub ticket: Option<&'a TicketId>,
    pub data: serde_json::Value,
}

pub(crate) fn record(conn: &mut PgConnection, event: Event<'_>) -> Outcome<()> {
    sql_query(
        "INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind::<Text, _>(event.tenant.as_str())
    .bind::<Text, _>(EventId::generate().as_str())
    .bind::<Text, _>(event.kind.as_str())
    .bind::<Timestamptz, _>(event.at)
    .bind::<Nullable<Text>, _>(event.program.map(ProgramId::as_str))
    .bind::<Nullable<Text>, _>(event.ticket.map(TicketId::as_str))
    .bind::<Jsonb, _>(event.data)
    .execute(conn)?;
    Ok(())
}
