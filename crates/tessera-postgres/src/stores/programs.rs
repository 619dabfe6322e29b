use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl, SelectableHelper,
};
use serde_json::json;
use tessera_app::model::Page;
use tessera_app::ports::{ProgramStore, StoreError, StoreResult};
use tessera_domain::{EventType, PageRequest, Program, ProgramId, TenantId};

use super::{directory, limit_offset};
use crate::error::Outcome;
use crate::events::{record, Event};
use crate::models::{total, ProgramRow};
use crate::schema::programs;
use crate::PgStore;

/// What an event says about a program: its policy, never anything secret.
fn describe(program: &Program) -> serde_json::Value {
    json!({
        "name": program.name.as_ref().map(|name| name.as_str()),
        "objectId": program.object_id.as_str(),
        "maxTickets": program.max_tickets.get(),
        "maxRedemptions": program.max_redemptions.get(),
        "startTime": program.window.start().to_rfc3339(),
        "endTime": program.window.end().to_rfc3339(),
        "urlPrefix": program.url_prefix.as_ref().map(|prefix| prefix.as_str()),
        "state": program.state.as_str(),
        "version": program.version,
    })
}

pub(crate) fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ProgramId,
) -> Outcome<Option<Program>> {
    programs::table
        .filter(programs::tenant_id.eq(tenant.as_str()))
        .filter(programs::id.eq(id.as_str()))
        .select(ProgramRow::as_select())
        .get_result(conn)
        .optional()?
        .map(ProgramRow::into_domain)
        .transpose()
}

fn insert_program(conn: &mut PgConnection, program: &Program) -> Outcome<()> {
    diesel::insert_into(programs::table)
        .values((
            programs::tenant_id.eq(program.tenant_id.as_str()),
            programs::id.eq(program.id.as_str()),
            programs::name.eq(program.name.as_ref().map(|name| name.as_str())),
            programs::object_id.eq(program.object_id.as_str()),
            programs::group_addresses.eq(program.group_addresses.as_slice()),
            programs::ntp_class.eq(i16::from(program.ntp_class.get())),
            programs::max_tickets.eq(i64::from(program.max_tickets.get())),
            programs::max_redemptions.eq(i64::from(program.max_redemptions.get())),
            programs::start_time.eq(program.window.start()),
            programs::end_time.eq(program.window.end()),
            programs::ticket_length.eq(i16::from(program.ticket_length.get())),
            programs::alphabet.eq(program.alphabet.as_str()),
            programs::url_prefix.eq(program.url_prefix.as_ref().map(|prefix| prefix.as_str())),
            programs::one_active_per_subject.eq(program.one_active_per_subject),
            programs::allow_rollback.eq(program.allow_rollback),
            programs::state.eq(program.state.as_str()),
            programs::issued_tickets.eq(i64::from(program.issued_tickets)),
            programs::version.eq(program.version),
            programs::created_at.eq(program.created_at),
            programs::updated_at.eq(program.updated_at),
            programs::code_pattern.eq(program.code_pattern.as_ref().map(|p| p.as_str())),
            programs::check_digit.eq(program.check_digit),
        ))
        .execute(conn)?;
    Ok(())
}

impl ProgramStore for PgStore {
    fn insert(&self, program: &Program) -> StoreResult<()> {
        self.in_transaction(|conn| {
            insert_program(conn, program)?;
            directory::add_program(conn, &program.tenant_id, &program.id)?;
            record(
                conn,
                Event {
                    tenant: &program.tenant_id,
                    kind: EventType::ProgramCreated,
                    at: program.created_at,
                    program: Some(&program.id),
                    ticket: None,
                    data: describe(program),
                },
            )
        })
    }

    fn get(&self, tenant: &TenantId, id: &ProgramId) -> StoreResult<Program> {
        self.with_conn(|conn| find(conn, tenant, id)?.ok_or(StoreError::NotFound.into()))
    }

    fn locate(&self, id: &ProgramId) -> StoreResult<Option<Program>> {
        self.with_conn(|conn| {
            // A public redemption names only the program: its tenant comes first.
            match directory::program_tenant(conn, id)? {
                Some(tenant) => find(conn, &tenant, id),
                None => Ok(None),
            }
        })
    }

    fn list(&self, tenant: &TenantId, page: PageRequest) -> StoreResult<Page<Program>> {
        let (limit, offset) = limit_offset(page);
        self.in_transaction(|conn| {
            let items = programs::table
                .filter(programs::tenant_id.eq(tenant.as_str()))
                .order((programs::created_at, programs::id))
                .limit(limit)
                .offset(offset)
                .select(ProgramRow::as_select())
                .load(conn)?
                .into_iter()
                .map(ProgramRow::into_domain)
                .collect::<Outcome<Vec<_>>>()?;
            let count = programs::table
                .filter(programs::tenant_id.eq(tenant.as_str()))
                .count()
                .get_result(conn)?;
            Ok(Page {
                items,
                total: total(count),
            })
        })
    }

    fn update(&self, updated: &Program, event_type: EventType) -> StoreResult<Program> {
        self.in_transaction(|conn| {
            let stored = diesel::update(
                programs::table
                    .filter(programs::tenant_id.eq(updated.tenant_id.as_str()))
                    .filter(programs::id.eq(updated.id.as_str()))
                    .filter(programs::version.eq(updated.version - 1)),
            )
            .set((
                programs::name.eq(updated.name.as_ref().map(|name| name.as_str())),
                programs::max_tickets.eq(i64::from(updated.max_tickets.get())),
                programs::max_redemptions.eq(i64::from(updated.max_redemptions.get())),
                programs::start_time.eq(updated.window.start()),
                programs::end_time.eq(updated.window.end()),
                programs::url_prefix.eq(updated.url_prefix.as_ref().map(|prefix| prefix.as_str())),
                programs::allow_rollback.eq(updated.allow_rollback),
                programs::state.eq(updated.state.as_str()),
                programs::version.eq(updated.version),
                programs::updated_at.eq(updated.updated_at),
            ))
            .returning(ProgramRow::as_returning())
            .get_result(conn)
            .optional()?;
            let Some(stored) = stored else {
                return Err(match find(conn, &updated.tenant_id, &updated.id)? {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::VersionConflict,
                }
                .into());
            };
            let stored = stored.into_domain()?;
            record(
                conn,
                Event {
                    tenant: &stored.tenant_id,
                    kind: event_type,
                    at: stored.updated_at,
                    program: Some(&stored.id),
                    ticket: None,
                    data: describe(&stored),
                },
            )?;
            Ok(stored)
        })
    }

    fn delete(&self, tenant: &TenantId, id: &ProgramId, now: DateTime<Utc>) -> StoreResult<()> {
        self.in_transaction(|conn| {
            let deleted = diesel::delete(
                programs::table
                    .filter(programs::tenant_id.eq(tenant.as_str()))
                    .filter(programs::id.eq(id.as_str())),
            )
            .execute(conn)?;
            if deleted == 0 {
                return Err(StoreError::NotFound.into());
            }
            directory::remove_program(conn, tenant, id)?;
            record(
                conn,
                Event {
                    tenant,
                    kind: EventType::ProgramDeleted,
                    at: now,
                    program: Some(id),
                    ticket: None,
                    data: json!({}),
                },
            )
        })
    }
}
