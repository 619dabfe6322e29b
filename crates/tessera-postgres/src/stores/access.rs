use diesel::sql_types::{Bytea, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, RunQueryDsl};
use tessera_app::model::{ApiKey, SecretHash, Tenant};
use tessera_app::ports::{AccessStore, StoreError, StoreResult};
use tessera_domain::{ApiKeyId, TenantId};

use crate::error::Outcome;
use crate::models::ApiKeyRow;
use crate::PgStore;

const KEY_COLUMNS: &str = "tenant_id, id, name, role, created_at";

fn insert_key(conn: &mut diesel::PgConnection, key: &ApiKey, hash: SecretHash) -> Outcome<()> {
    sql_query(
        "INSERT INTO api_keys (tenant_id, id, name, role, key_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<Text, _>(key.tenant_id.as_str())
    .bind::<Text, _>(key.id.as_str())
    .bind::<Text, _>(key.name.as_str())
    .bind::<Text, _>(key.role.as_str())
    .bind::<Bytea, _>(&hash.0[..])
    .bind::<Timestamptz, _>(key.created_at)
    .execute(conn)?;
    Ok(())
}

impl AccessStore for PgStore {
    fn create_tenant(
        &self,
        tenant: &Tenant,
        admin_key: &ApiKey,
        key_hash: SecretHash,
    ) -> StoreResult<()> {
        self.in_transaction(|conn| {
            sql_query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                .bind::<Text, _>(tenant.id.as_str())
                .bind::<Text, _>(tenant.name.as_str())
                .bind::<Timestamptz, _>(tenant.created_at)
                .execute(conn)?;
            insert_key(conn, admin_key, key_hash)
        })
    }

    fn insert_api_key(&self, key: &ApiKey, key_hash: SecretHash) -> StoreResult<()> {
        self.with_conn(|conn| insert_key(conn, key, key_hash))
    }

    fn find_api_key(&self, key_hash: SecretHash) -> StoreResult<Option<ApiKey>> {
        self.with_conn(|conn| {
            // Tenant-less by necessity: the presented key is what names the tenant.
            sql_query(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
            ))
            .bind::<Bytea, _>(&key_hash.0[..])
            .get_result::<ApiKeyRow>(conn)
            .optional()?
            .map(ApiKeyRow::into_domain)
            .transpose()
        })
    }

    fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        self.with_conn(|conn| {
            sql_query(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
            ))
            .bind::<Text, _>(tenant.as_str())
            .load::<ApiKeyRow>(conn)?
            .into_iter()
            .map(ApiKeyRow::into_domain)
            .collect()
        })
    }

    fn delete_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<()> {
        self.with_conn(|conn| {
            let deleted = sql_query("DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2")
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(id.as_str())
                .execute(conn)?;
            if deleted == 0 {
                return Err(StoreError::NotFound.into());
            }
            Ok(())
        })
    }
}
