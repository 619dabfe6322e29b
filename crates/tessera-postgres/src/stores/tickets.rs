use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Bytea, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::json;
use tessera_app::model::{NewTicket, Page, TicketView};
use tessera_app::ports::{StoreError, StoreResult, TicketStore};
use tessera_domain::{
    EventType, PageRequest, Program, ProgramId, TenantId, Ticket, TicketId, TicketState,
};

use super::programs::find as find_program;
use super::{batch, limit_offset};
use crate::error::Outcome;
use crate::events::{record, Event};
use crate::models::{TicketRow, Total, TICKET_VIEW_COLUMNS};
use crate::PgStore;

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Bool)]
    one_active_per_subject: bool,
}

/// Raises the program's counter iff it may issue one more ticket now: the
/// predicate, not Rust, enforces `maxTickets` under concurrency.
fn claim_slot(
    conn: &mut PgConnection,
    tenant: &TenantId,
    program: &ProgramId,
    now: DateTime<Utc>,
) -> Outcome<Option<Claimed>> {
    Ok(sql_query(
        "UPDATE programs SET issued_tickets = issued_tickets + 1 \
         WHERE tenant_id = $1 AND id = $2 AND state = 'active' AND end_time > $3 \
         AND (max_tickets = 0 OR issued_tickets + 1 <= max_tickets) \
         RETURNING one_active_per_subject",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(program.as_str())
    .bind::<Timestamptz, _>(now)
    .get_result::<Claimed>(conn)
    .optional()?)
}

fn insert_ticket(conn: &mut PgConnection, new: &NewTicket, exclusive: bool) -> Outcome<()> {
    let ticket = &new.ticket;
    let subject = ticket.subject.as_ref().map(|subject| subject.as_str());
    sql_query(
        "INSERT INTO tickets (tenant_id, id, program_id, code_hash, link_hash, email, \
         email_normalized, subject, exclusive_subject, max_redemptions, redemptions, state, \
         failed_attempts, payload, last_redeemed_at, last_failed_at, created_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind::<Text, _>(ticket.tenant_id.as_str())
    .bind::<Text, _>(ticket.id.as_str())
    .bind::<Text, _>(ticket.program_id.as_str())
    .bind::<Bytea, _>(&new.code_hash.0[..])
    .bind::<Nullable<Bytea>, _>(new.link_hash.as_ref().map(|hash| &hash.0[..]))
    .bind::<Nullable<Text>, _>(ticket.email.as_ref().map(|email| email.as_str()))
    .bind::<Nullable<Text>, _>(ticket.email.as_ref().map(|email| email.normalized()))
    .bind::<Nullable<Text>, _>(subject)
    .bind::<Nullable<Text>, _>(subject.filter(|_| exclusive))
    .bind::<Nullable<BigInt>, _>(ticket.max_redemptions.map(|limit| i64::from(limit.get())))
    .bind::<BigInt, _>(i64::from(ticket.redemptions))
    .bind::<Text, _>(ticket.state.as_str())
    .bind::<BigInt, _>(i64::from(ticket.failed_attempts))
    .bind::<Nullable<Text>, _>(
        ticket
            .payload
            .as_ref()
            .map(|payload| payload.as_json_text()),
    )
    .bind::<Nullable<Timestamptz>, _>(ticket.last_redeemed_at)
    .bind::<Nullable<Timestamptz>, _>(ticket.last_failed_at)
    .bind::<Timestamptz, _>(ticket.created_at)
    .bind::<BigInt, _>(ticket.version)
    .execute(conn)?;
    Ok(())
}

fn issued_event(ticket: &Ticket, now: DateTime<Utc>) -> Event<'_> {
    Event {
        tenant: &ticket.tenant_id,
        kind: EventType::TicketIssued,
        at: now,
        program: Some(&ticket.program_id),
        ticket: Some(&ticket.id),
        data: json!({
            "maxRedemptions": ticket.max_redemptions.map(|limit| limit.get()),
            "emailBound": ticket.email.is_some(),
            "subject": ticket.subject.as_ref().map(|subject| subject.as_str()),
        }),
    }
}

pub(crate) fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &TicketId,
) -> Outcome<Option<TicketView>> {
    sql_query(format!(
        "SELECT {TICKET_VIEW_COLUMNS} FROM tickets t \
         JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id \
         WHERE t.tenant_id = $1 AND t.id = $2"
    ))
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(id.as_str())
    .get_result::<TicketRow>(conn)
    .optional()?
    .map(TicketRow::into_view)
    .transpose()
}

impl TicketStore for PgStore {
    fn issue(&self, new: &NewTicket, now: DateTime<Utc>) -> StoreResult<()> {
        let ticket = &new.ticket;
        self.in_transaction(|conn| {
            let Some(claimed) = claim_slot(conn, &ticket.tenant_id, &ticket.program_id, now)?
            else {
                // Read-only classification of a refusal the UPDATE already made.
                let program = find_program(conn, &ticket.tenant_id, &ticket.program_id)?
                    .ok_or(StoreError::NotFound)?;
                return Err(if program.is_issuing(now) {
                    StoreError::MaxTicketsReached
                } else {
                    StoreError::ProgramNotActive
                }
                .into());
            };
            // A unique violation here aborts the transaction, so the counter raised
            // above is rolled back with it.
            insert_ticket(conn, new, claimed.one_active_per_subject)?;
            record(conn, issued_event(ticket, now))
        })
    }

    fn get(&self, tenant: &TenantId, id: &TicketId) -> StoreResult<TicketView> {
        self.with_conn(|conn| find(conn, tenant, id)?.ok_or(StoreError::NotFound.into()))
    }

    fn list(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        page: PageRequest,
    ) -> StoreResult<Page<TicketView>> {
        let (limit, offset) = limit_offset(page);
        self.in_transaction(|conn| {
            if find_program(conn, tenant, program)?.is_none() {
                return Err(StoreError::NotFound.into());
            }
            let items = sql_query(format!(
                "SELECT {TICKET_VIEW_COLUMNS} FROM tickets t \
                 JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id \
                 WHERE t.tenant_id = $1 AND t.program_id = $2 \
                 ORDER BY t.created_at, t.id LIMIT $3 OFFSET $4"
            ))
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(program.as_str())
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<TicketRow>(conn)?
            .into_iter()
            .map(TicketRow::into_view)
            .collect::<Outcome<Vec<_>>>()?;
            let total = sql_query(
                "SELECT count(*) AS total FROM tickets WHERE tenant_id = $1 AND program_id = $2",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(program.as_str())
            .get_result::<Total>(conn)?;
            Ok(Page {
                items,
                total: total.get(),
            })
        })
    }

    fn set_state(
        &self,
        tenant: &TenantId,
        id: &TicketId,
        state: TicketState,
        expected_version: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TicketView> {
        self.in_transaction(|conn| {
            // Activating may hit tickets_one_active_per_subject, which the error
            // mapping reports as SubjectHasActiveTicket.
            let changed = sql_query(format!(
                "UPDATE tickets t SET state = $3, version = t.version + 1, \
                 failed_attempts = CASE WHEN $3 = 'active' THEN 0 ELSE t.failed_attempts END \
                 FROM programs p \
                 WHERE t.tenant_id = $1 AND t.id = $2 AND t.version = $4 \
                 AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
                 RETURNING {TICKET_VIEW_COLUMNS}"
            ))
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .bind::<Text, _>(state.as_str())
            .bind::<BigInt, _>(expected_version)
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
                    data: json!({ "state": state.as_str(), "version": view.ticket.version }),
                },
            )?;
            Ok(view)
        })
    }

    fn revoke(&self, tenant: &TenantId, id: &TicketId, now: DateTime<Utc>) -> StoreResult<()> {
        #[derive(QueryableByName)]
        struct Revoked {
            #[diesel(sql_type = Text)]
            program_id: String,
        }
        self.in_transaction(|conn| {
            let revoked = sql_query(
                "UPDATE tickets SET state = 'revoked', version = version + 1 \
                 WHERE tenant_id = $1 AND id = $2 AND state <> 'revoked' \
                 RETURNING program_id",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .get_result::<Revoked>(conn)
            .optional()?;
            let Some(revoked) = revoked else {
                // Already revoked is success without a second event; absent is not.
                return match find(conn, tenant, id)? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound.into()),
                };
            };
            let program = ProgramId::parse(&revoked.program_id)
                .map_err(|e| crate::error::corrupt("ticket", e))?;
            record(
                conn,
                Event {
                    tenant,
                    kind: EventType::TicketRevoked,
                    at: now,
                    program: Some(&program),
                    ticket: Some(id),
                    data: json!({}),
                },
            )
        })
    }

    fn reserve(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Program> {
        // One statement (the conditional UPDATE) decides; the read that follows a
        // refusal only classifies it.
        self.with_conn(|conn| batch::reserve(conn, tenant, program, count, now))
    }

    fn insert_reserved(&self, tickets: &[NewTicket]) -> StoreResult<Vec<usize>> {
        self.in_transaction(|conn| batch::insert_reserved(conn, tickets))
    }

    fn release(&self, tenant: &TenantId, program: &ProgramId, count: u32) -> StoreResult<()> {
        self.with_conn(|conn| batch::release(conn, tenant, program, count))
    }

    fn record_batch(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with_conn(|conn| batch::record_batch(conn, tenant, program, count, now))
    }
}
