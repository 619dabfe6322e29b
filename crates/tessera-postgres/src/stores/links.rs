//! `LinkStore`: URL tickets found by the hash of their link token.

use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl, SelectableHelper};
use tessera_app::links::{LinkStore, LinkedTicket};
use tessera_app::model::SecretHash;
use tessera_app::ports::StoreResult;

use tessera_domain::TenantId;

use super::directory;
use super::programs::find as find_program;
use super::tickets::ticket_views;
use crate::error::corrupt;
use crate::models::TicketRow;
use crate::schema::tickets;
use crate::PgStore;

impl LinkStore for PgStore {
    fn find_by_link(
        &self,
        tenant: Option<TenantId>,
        link_hash: SecretHash,
    ) -> StoreResult<Option<LinkedTicket>> {
        // Read-only; the redemption that may follow is the code path's
        // conditional statement.
        self.with_conn(|conn| {
            let tenant = match tenant {
                Some(tenant) => tenant,
                None => match directory::legacy_link_tenant(conn, link_hash)? {
                    Some(tenant) => tenant,
                    None => return Ok(None),
                },
            };
            let found: Option<(TicketRow, Vec<u8>)> = ticket_views()
                .filter(tickets::tenant_id.eq(tenant.as_str()))
                .filter(tickets::link_hash.eq(&link_hash.0[..]))
                .select((TicketRow::as_select(), tickets::code_hash))
                .get_result(conn)
                .optional()?;
            let Some((row, code_hash)) = found else {
                return Ok(None);
            };
            let view = row.into_view()?;
            let code_hash = <[u8; 32]>::try_from(code_hash.as_slice())
                .map(SecretHash)
                .map_err(|e| corrupt("ticket", e))?;
            // Deleting a program deletes its tickets: a missing one is no link.
            let Some(program) =
                find_program(conn, &view.ticket.tenant_id, &view.ticket.program_id)?
            else {
                return Ok(None);
            };
            Ok(Some(LinkedTicket {
                view,
                program,
                code_hash,
            }))
        })
    }
}
