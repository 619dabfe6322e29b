//! `PATCH /v1/tickets/{id}`: a ticket's state and its own limit (a refill) in one
//! versioned statement.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, RunQueryDsl};
use serde_json::json;
use tessera_app::model::{TicketChanges, TicketView};
use tessera_app::ports::StoreError;
use tessera_domain::{EventType, TenantId, TicketId};

use super::tickets::find;
use crate::error::Outcome;
use crate::events::{record, Event};
use crate::models::{ticket_view_columns, TicketRow};

pub(crate) fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &TicketId,
    changes: TicketChanges,
    expected_version: i64,
    now: DateTime<Utc>,
) -> Outcome<TicketView> {
    let state = changes.state.map(|state| state.as_str());
    let limit = changes.max_redemptions.map(|limit| i64::from(limit.get()));
    // Hand-written for the same reason as `set_state`: the view comes back from
    // the row written through `UPDATE … FROM programs`. The version predicate
    // makes it a compare-and-set; activating may hit tickets_one_active_per_subject.
    let changed = sql_query(format!(
        "UPDATE tickets t SET state = COALESCE($3, t.state), version = t.version + 1, \
         max_redemptions = COALESCE($5, t.max_redemptions), \
         failed_attempts = CASE WHEN $3 = 'active' THEN 0 ELSE t.failed_attempts END \
         FROM programs p \
         WHERE t.tenant_id = $1 AND t.id = $2 AND t.version = $4 \
         AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
         RETURNING {}",
        ticket_view_columns(6)
    ))
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(id.as_str())
    .bind::<Nullable<Text>, _>(state)
    .bind::<BigInt, _>(expected_version)
    .bind::<Nullable<BigInt>, _>(limit)
    .bind::<Timestamptz, _>(now)
    .get_result::<TicketRow>(conn)
    .optional()?;
    let Some(changed) = changed else {
        return Err(match find(conn, tenant, id)? {
            None => StoreError::NotFound,
            Some(_) => StoreError::VersionConflict,
        }
        .into());
    };
    let view = changed.into_view()?;
    record(
        conn,
        Event {
            tenant,
            kind: EventType::TicketUpdated,
            at: now,
            program: Some(&view.ticket.program_id),
            ticket: Some(id),
            data: json!({
                "state": view.ticket.state.as_str(),
                "maxRedemptions": changes.max_redemptions.map(|limit| limit.get()),
                "version": view.ticket.version,
            }),
        },
    )?;
    Ok(view)
}
