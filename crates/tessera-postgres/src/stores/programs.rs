use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, SmallInt, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, RunQueryDsl};
use serde_json::json;
use tessera_app::model::Page;
use tessera_app::ports::{ProgramStore, StoreError, StoreResult};
use tessera_domain::{EventType, PageRequest, Program, ProgramId, TenantId};

use super::limit_offset;
use crate::error::Outcome;
use crate::events::{record, Event};
use crate::models::{ProgramRow, Total};
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
    sql_query("SELECT * FROM programs WHERE tenant_id = $1 AND id = $2")
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(id.as_str())
        .get_result::<ProgramRow>(conn)
        .optional()?
        .map(ProgramRow::into_domain)
        .transpose()
}

fn insert_program(conn: &mut PgConnection, program: &Program) -> Outcome<()> {
    sql_query(
        "INSERT INTO programs (tenant_id, id, name, object_id, group_addresses, ntp_class, \
         max_tickets, max_redemptions, start_time, end_time, ticket_length, alphabet, \
         url_prefix, one_active_per_subject, state, issued_tickets, version, created_at, \
         updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19)",
    )
    .bind::<Text, _>(program.tenant_id.as_str())
    .bind::<Text, _>(program.id.as_str())
    .bind::<Nullable<Text>, _>(program.name.as_ref().map(|name| name.as_str()))
    .bind::<Text, _>(program.object_id.as_str())
    .bind::<Array<Text>, _>(program.group_addresses.as_slice())
    .bind::<SmallInt, _>(i16::from(program.ntp_class.get()))
    .bind::<BigInt, _>(i64::from(program.max_tickets.get()))
    .bind::<BigInt, _>(i64::from(program.max_redemptions.get()))
    .bind::<Timestamptz, _>(program.window.start())
    .bind::<Timestamptz, _>(program.window.end())
    .bind::<SmallInt, _>(i16::from(program.ticket_length.get()))
    .bind::<Text, _>(program.alphabet.as_str())
    .bind::<Nullable<Text>, _>(program.url_prefix.as_ref().map(|prefix| prefix.as_str()))
    .bind::<Bool, _>(program.one_active_per_subject)
    .bind::<Text, _>(program.state.as_str())
    .bind::<BigInt, _>(i64::from(program.issued_tickets))
    .bind::<BigInt, _>(program.version)
    .bind::<Timestamptz, _>(program.created_at)
    .bind::<Timestamptz, _>(program.updated_at)
    .execute(conn)?;
    Ok(())
}

impl ProgramStore for PgStore {
    fn insert(&self, program: &Program) -> StoreResult<()> {
        self.in_transaction(|conn| {
            insert_program(conn, program)?;
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
            // Tenant-less by necessity (unique index programs_id_unique): a public
            // redemption names only the program.
            sql_query("SELECT * FROM programs WHERE id = $1")
                .bind::<Text, _>(id.as_str())
                .get_result::<ProgramRow>(conn)
                .optional()?
                .map(ProgramRow::into_domain)
                .transpose()
        })
    }

    fn list(&self, tenant: &TenantId, page: PageRequest) -> StoreResult<Page<Program>> {
        let (limit, offset) = limit_offset(page);
        self.in_transaction(|conn| {
            let items = sql_query(
                "SELECT * FROM programs WHERE tenant_id = $1 \
                 ORDER BY created_at, id LIMIT $2 OFFSET $3",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<ProgramRow>(conn)?
            .into_iter()
            .map(ProgramRow::into_domain)
            .collect::<Outcome<Vec<_>>>()?;
            let total = sql_query("SELECT count(*) AS total FROM programs WHERE tenant_id = $1")
                .bind::<Text, _>(tenant.as_str())
                .get_result::<Total>(conn)?;
            Ok(Page {
                items,
                total: total.get(),
            })
        })
    }

    fn update(&self, updated: &Program, event_type: EventType) -> StoreResult<Program> {
        self.in_transaction(|conn| {
            let stored = sql_query(
                "UPDATE programs SET name = $3, max_tickets = $4, max_redemptions = $5, \
                 start_time = $6, end_time = $7, url_prefix = $8, state = $9, version = $10, \
                 updated_at = $11 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $10 - 1 \
                 RETURNING *",
            )
            .bind::<Text, _>(updated.tenant_id.as_str())
            .bind::<Text, _>(updated.id.as_str())
            .bind::<Nullable<Text>, _>(updated.name.as_ref().map(|name| name.as_str()))
            .bind::<BigInt, _>(i64::from(updated.max_tickets.get()))
            .bind::<BigInt, _>(i64::from(updated.max_redemptions.get()))
            .bind::<Timestamptz, _>(updated.window.start())
            .bind::<Timestamptz, _>(updated.window.end())
            .bind::<Nullable<Text>, _>(updated.url_prefix.as_ref().map(|prefix| prefix.as_str()))
            .bind::<Text, _>(updated.state.as_str())
            .bind::<BigInt, _>(updated.version)
            .bind::<Timestamptz, _>(updated.updated_at)
            .get_result::<ProgramRow>(conn)
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
            let deleted = sql_query("DELETE FROM programs WHERE tenant_id = $1 AND id = $2")
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(id.as_str())
                .execute(conn)?;
            if deleted == 0 {
                return Err(StoreError::NotFound.into());
            }
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
