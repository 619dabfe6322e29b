use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel::{
    sql_query, BoolExpressionMethods, ExpressionMethods, JoinOnDsl, OptionalExtension,
    PgConnection, QueryDsl, QueryableByName, RunQueryDsl, SelectableHelper,
};
use serde_json::json;
use tessera_app::model::{ImportOutcome, ImportSource, NewTicket, Page, TicketChanges, TicketView};
use tessera_app::ports::{StoreError, StoreResult, TicketStore};
use tessera_domain::{
    EventType, PageRequest, Program, ProgramId, TenantId, Ticket, TicketId, TicketState,
};

use super::programs::find as find_program;
use super::{batch, limit_offset};
use crate::error::Outcome;
use crate::events::{record, Event};
use crate::models::{ticket_view_columns, total, TicketRow};
use crate::schema::{programs, tickets};
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
    // Hand-written: the conditional counter UPDATE is the rule (as in
    // `batch::reserve`).
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
    let payload = ticket
        .payload
        .as_ref()
        .map(|payload| payload.as_json_text());
    diesel::insert_into(tickets::table)
        .values((
            tickets::tenant_id.eq(ticket.tenant_id.as_str()),
            tickets::id.eq(ticket.id.as_str()),
            tickets::program_id.eq(ticket.program_id.as_str()),
            tickets::code_hash.eq(&new.code_hash.0[..]),
            tickets::link_hash.eq(new.link_hash.as_ref().map(|hash| &hash.0[..])),
            tickets::email.eq(ticket.email.as_ref().map(|email| email.as_str())),
            tickets::email_normalized.eq(ticket.email.as_ref().map(|email| email.normalized())),
            tickets::subject.eq(subject),
            tickets::exclusive_subject.eq(subject.filter(|_| exclusive)),
            tickets::max_redemptions.eq(ticket.max_redemptions.map(|limit| i64::from(limit.get()))),
            tickets::redemptions.eq(i64::from(ticket.redemptions)),
            tickets::state.eq(ticket.state.as_str()),
            tickets::failed_attempts.eq(i64::from(ticket.failed_attempts)),
            tickets::payload.eq(payload),
            tickets::last_redeemed_at.eq(ticket.last_redeemed_at),
            tickets::last_failed_at.eq(ticket.last_failed_at),
            tickets::locked_until.eq(ticket.locked_until),
            tickets::created_at.eq(ticket.created_at),
            tickets::version.eq(ticket.version),
            tickets::per_redeemer_limit.eq(ticket
                .per_redeemer_limit
                .map(|limit| i64::from(limit.get()))),
        ))
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

/// Tickets joined with their program, whose limit a `TicketRow` carries.
#[diesel::dsl::auto_type]
pub(crate) fn ticket_views() -> _ {
    tickets::table.inner_join(
        programs::table.on(programs::tenant_id
            .eq(tickets::tenant_id)
            .and(programs::id.eq(tickets::program_id))),
    )
}

pub(crate) fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &TicketId,
) -> Outcome<Option<TicketView>> {
    ticket_views()
        .filter(tickets::tenant_id.eq(tenant.as_str()))
        .filter(tickets::id.eq(id.as_str()))
        .select(TicketRow::as_select())
        .get_result(conn)
        .optional()?
        .map(TicketRow::into_view)
        .transpose()
}

/// Issues one ticket inside the caller's transaction (see `TicketStore::issue`);
/// with `replace`, first revokes the subject's active ticket.
fn issue_in(
    conn: &mut PgConnection,
    new: &NewTicket,
    now: DateTime<Utc>,
    replace: bool,
) -> Outcome<()> {
    let ticket = &new.ticket;
    let Some(claimed) = claim_slot(conn, &ticket.tenant_id, &ticket.program_id, now)? else {
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
    // The claim above holds the program's row lock until commit, so issues in
    // one program serialize here: a replacement sees any ticket a concurrent
    // one inserted, and revokes it.
    if replace && claimed.one_active_per_subject {
        super::replace::revoke_active(conn, ticket, now)?;
    }
    // A unique violation here aborts the transaction, so the counter raised
    // above is rolled back with it.
    insert_ticket(conn, new, claimed.one_active_per_subject)?;
    record(conn, issued_event(ticket, now))
}

impl TicketStore for PgStore {
    fn issue(&self, new: &NewTicket, now: DateTime<Utc>) -> StoreResult<()> {
        self.in_transaction(|conn| issue_in(conn, new, now, false))
    }

    fn issue_replacing(&self, new: &NewTicket, now: DateTime<Utc>) -> StoreResult<()> {
        self.in_transaction(|conn| issue_in(conn, new, now, true))
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
            let items = ticket_views()
                .filter(tickets::tenant_id.eq(tenant.as_str()))
                .filter(tickets::program_id.eq(program.as_str()))
                .order((tickets::created_at, tickets::id))
                .limit(limit)
                .offset(offset)
                .select(TicketRow::as_select())
                .load(conn)?
                .into_iter()
                .map(TicketRow::into_view)
                .collect::<Outcome<Vec<_>>>()?;
            let count = tickets::table
                .filter(tickets::tenant_id.eq(tenant.as_str()))
                .filter(tickets::program_id.eq(program.as_str()))
                .count()
                .get_result(conn)?;
            Ok(Page {
                items,
                total: total(count),
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
            // mapping reports as SubjectHasActiveTicket. Hand-written: the view,
            // program limit included, comes back from the row this statement wrote
            // through `UPDATE … FROM programs`, which the typed builder lacks.
            let changed = sql_query(format!(
                "UPDATE tickets t SET state = $3, version = t.version + 1, \
                 failed_attempts = CASE WHEN $3 = 'active' THEN 0 ELSE t.failed_attempts END, \
                 locked_until = CASE WHEN $3 = 'active' THEN NULL ELSE t.locked_until END, \
                 email_locks = CASE WHEN $3 = 'active' THEN 0 ELSE t.email_locks END \
                 FROM programs p \
                 WHERE t.tenant_id = $1 AND t.id = $2 AND t.version = $4 \
                 AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
                 RETURNING {}",
                ticket_view_columns(5)
            ))
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .bind::<Text, _>(state.as_str())
            .bind::<BigInt, _>(expected_version)
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
                    data: json!({ "state": state.as_str(), "version": view.ticket.version }),
                },
            )?;
            Ok(view)
        })
    }

    fn update_ticket(
        &self,
        tenant: &TenantId,
        id: &TicketId,
        changes: TicketChanges,
        expected_version: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TicketView> {
        self.in_transaction(|conn| {
            super::refill::update(conn, tenant, id, changes, expected_version, now)
        })
    }

    fn revoke(&self, tenant: &TenantId, id: &TicketId, now: DateTime<Utc>) -> StoreResult<()> {
        let revoked_state = TicketState::Revoked.as_str();
        self.in_transaction(|conn| {
            let revoked: Option<String> = diesel::update(
                tickets::table
                    .filter(tickets::tenant_id.eq(tenant.as_str()))
                    .filter(tickets::id.eq(id.as_str()))
                    .filter(tickets::state.ne(revoked_state)),
            )
            .set((
                tickets::state.eq(revoked_state),
                tickets::version.eq(tickets::version + 1),
            ))
            .returning(tickets::program_id)
            .get_result(conn)
            .optional()?;
            let Some(revoked) = revoked else {
                // Already revoked is success without a second event; absent is not.
                return match find(conn, tenant, id)? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound.into()),
                };
            };
            let program =
                ProgramId::parse(&revoked).map_err(|e| crate::error::corrupt("ticket", e))?;
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

    fn import(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        now: DateTime<Utc>,
        next: &mut dyn ImportSource,
    ) -> StoreResult<ImportOutcome> {
        self.import_tickets(tenant, program, now, next)
    }

    fn record_batch(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with_conn(|conn| {
            batch::record_batch(conn, tenant, program, count, now)?;
            super::statistics::refresh_tickets(conn, u64::from(count));
            Ok(())
        })
    }
}
