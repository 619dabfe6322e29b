//! Where a lookup that starts without a tenant finds it (migration
//! 2026-12-01-000200_tenant_routed_lookups). Each answer is then looked up again
//! in that tenant, so a stale directory row routes to a tenant that holds nothing.
//! Only ever single-row statements on the directory's own key: on Citus these
//! are reference tables, read on any node and never joined with tenant tables.

use diesel::{ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl};
use tessera_app::model::SecretHash;
use tessera_domain::{ProgramId, TenantId};

use crate::error::{corrupt, Outcome};
use crate::schema::{legacy_api_key_directory, legacy_link_directory, program_directory};

fn tenant_id(raw: Option<String>) -> Outcome<Option<TenantId>> {
    raw.map(|raw| TenantId::parse(&raw).map_err(|e| corrupt("directory tenant", e)))
        .transpose()
}

/// The tenant holding program `id`.
pub(crate) fn program_tenant(conn: &mut PgConnection, id: &ProgramId) -> Outcome<Option<TenantId>> {
    tenant_id(
        program_directory::table
            .filter(program_directory::program_id.eq(id.as_str()))
            .select(program_directory::tenant_id)
            .get_result(conn)
            .optional()?,
    )
}

/// Lists a new program (in the transaction that inserts it).
pub(crate) fn add_program(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ProgramId,
) -> Outcome<()> {
    diesel::insert_into(program_directory::table)
        .values((
            program_directory::program_id.eq(id.as_str()),
            program_directory::tenant_id.eq(tenant.as_str()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Unlists a deleted program (in the transaction that deletes it).
pub(crate) fn remove_program(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ProgramId,
) -> Outcome<()> {
    diesel::delete(
        program_directory::table
            .filter(program_directory::program_id.eq(id.as_str()))
            .filter(program_directory::tenant_id.eq(tenant.as_str())),
    )
    .execute(conn)?;
    Ok(())
}

/// The tenant of an API key made before keys named their tenant.
pub(crate) fn legacy_key_tenant(
    conn: &mut PgConnection,
    hash: SecretHash,
) -> Outcome<Option<TenantId>> {
    tenant_id(
        legacy_api_key_directory::table
            .filter(legacy_api_key_directory::key_hash.eq(&hash.0[..]))
            .select(legacy_api_key_directory::tenant_id)
            .get_result(conn)
            .optional()?,
    )
}

/// Forgets a deleted key made before keys named their tenant (no-op for others).
pub(crate) fn forget_legacy_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    hash: &[u8],
) -> Outcome<()> {
    diesel::delete(
        legacy_api_key_directory::table
            .filter(legacy_api_key_directory::key_hash.eq(hash))
            .filter(legacy_api_key_directory::tenant_id.eq(tenant.as_str())),
    )
    .execute(conn)?;
    Ok(())
}

/// The tenant of a link made before links named their tenant.
pub(crate) fn legacy_link_tenant(
    conn: &mut PgConnection,
    hash: SecretHash,
) -> Outcome<Option<TenantId>> {
    tenant_id(
        legacy_link_directory::table
            .filter(legacy_link_directory::link_hash.eq(&hash.0[..]))
            .select(legacy_link_directory::tenant_id)
            .get_result(conn)
            .optional()?,
    )
}
