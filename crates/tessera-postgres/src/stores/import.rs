//! Imports: every chunk of an import goes into ONE transaction through the bulk
//! insert of `batch` (`INSERT … FROM unnest(…) ON CONFLICT (tenant_id, code_hash)
//! DO NOTHING RETURNING`), whose skipped rows are codes already in the tenant. A
//! concurrent import holding the same code waits on that index entry and then
//! skips it, so of two racing imports sharing a code exactly one commits.
//! `maxTickets` is enforced at the end by the conditional counter update.

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection};
use serde_json::json;
use tessera_app::model::{ImportOutcome, ImportSource, ImportStep, NewTicket};
use tessera_app::ports::{StoreError, StoreResult};
use tessera_domain::{EventType, ProgramId, TenantId};

use super::batch;
use crate::error::{Failure, Outcome};
use crate::events::{record, Event};
use crate::PgStore;

/// Line numbers of taken codes an answer names at most.
const LINES_NAMED: usize = 10;

fn run(
    conn: &mut PgConnection,
    tenant: &TenantId,
    program: &ProgramId,
    now: DateTime<Utc>,
    next: &mut dyn ImportSource,
    taken: &mut Vec<u64>,
) -> Outcome<u32> {
    let mut count: u32 = 0;
    loop {
        match next.next_step() {
            ImportStep::Chunk(rows) => {
                let (lines, tickets): (Vec<u64>, Vec<NewTicket>) = rows.into_iter().unzip();
                for skipped in batch::insert_reserved(conn, &tickets)? {
                    if taken.len() < LINES_NAMED {
                        taken.push(lines[skipped]);
                    }
                }
                count = count.saturating_add(tickets.len() as u32);
            }
            ImportStep::Done if taken.is_empty() => break,
            // A marker that rolls the transaction back; `import` turns it into
            // `RolledBack`.
            ImportStep::Done | ImportStep::Abort => return Err(Failure(StoreError::CodeTaken)),
        }
    }
    // The cap, the program's state and its end, decided by one conditional update.
    batch::reserve(conn, tenant, program, count, now)?;
    record(
        conn,
        Event {
            tenant,
            kind: EventType::TicketBatchImported,
            at: now,
            program: Some(program),
            ticket: None,
            data: json!({ "count": count }),
        },
    )?;
    Ok(count)
}

impl PgStore {
    pub(crate) fn import_tickets(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        now: DateTime<Utc>,
        next: &mut dyn ImportSource,
    ) -> StoreResult<ImportOutcome> {
        let mut taken = Vec::new();
        let result = self.with_conn(|conn| {
            let count =
                conn.transaction(|conn| run(conn, tenant, program, now, next, &mut taken))?;
            super::statistics::refresh_tickets(conn, u64::from(count));
            Ok(count)
        });
        match result {
            Ok(count) => Ok(ImportOutcome::Imported(count)),
            Err(StoreError::CodeTaken) => Ok(ImportOutcome::RolledBack { taken }),
            Err(other) => Err(other),
        }
    }
}
