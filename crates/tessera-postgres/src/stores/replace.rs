//! `replace: true`: the subject's active ticket is revoked in the transaction that
//! issues its successor, so re-sending a link never leaves two live links.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, PgConnection, QueryDsl, RunQueryDsl};
use serde_json::json;
use tessera_domain::{EventType, Ticket, TicketId, TicketState};

use crate::error::{corrupt, Outcome};
use crate::events::{record, Event};
use crate::schema::tickets;

/// Revokes the active ticket(s) of `successor`'s subject in its program (at most
/// one, by `tickets_one_active_per_subject`) with one conditional UPDATE, writing
/// `ticket.revoked` naming the successor for each. Runs after the issuing
/// transaction locked the program's row, so it sees every committed ticket.
pub(crate) fn revoke_active(
    conn: &mut PgConnection,
    successor: &Ticket,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let Some(subject) = successor.subject.as_ref() else {
        return Ok(());
    };
    let revoked: Vec<String> = diesel::update(
        tickets::table
            .filter(tickets::tenant_id.eq(successor.tenant_id.as_str()))
            .filter(tickets::program_id.eq(successor.program_id.as_str()))
            .filter(tickets::exclusive_subject.eq(subject.as_str()))
            .filter(tickets::state.eq(TicketState::Active.as_str())),
    )
    .set((
        tickets::state.eq(TicketState::Revoked.as_str()),
        tickets::version.eq(tickets::version + 1),
    ))
    .returning(tickets::id)
    .get_results(conn)?;
    for id in revoked {
        let id = TicketId::parse(&id).map_err(|e| corrupt("ticket", e))?;
        record(
            conn,
            Event {
                tenant: &successor.tenant_id,
                kind: EventType::TicketRevoked,
                at: now,
                program: Some(&successor.program_id),
                ticket: Some(&id),
                data: json!({ "replacedBy": successor.id.as_str() }),
            },
        )?;
    }
    Ok(())
}
