use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl, SelectableHelper};
use tessera_app::model::{ApiKey, SecretHash, Tenant};
use tessera_app::ports::{AccessStore, Later, StoreError, StoreResult};
use tessera_domain::{ApiKeyId, TenantId};

use super::directory;
use crate::error::Outcome;
use crate::models::ApiKeyRow;
use crate::schema::{api_keys, tenants};
use crate::PgStore;

fn insert_key(conn: &mut diesel::PgConnection, key: &ApiKey, hash: SecretHash) -> Outcome<()> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::tenant_id.eq(key.tenant_id.as_str()),
            api_keys::id.eq(key.id.as_str()),
            api_keys::name.eq(key.name.as_str()),
            api_keys::role.eq(key.role.as_str()),
            api_keys::key_hash.eq(&hash.0[..]),
            api_keys::created_at.eq(key.created_at),
        ))
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
            diesel::insert_into(tenants::table)
                .values((
                    tenants::id.eq(tenant.id.as_str()),
                    tenants::name.eq(tenant.name.as_str()),
                    tenants::created_at.eq(tenant.created_at),
                ))
                .execute(conn)?;
            insert_key(conn, admin_key, key_hash)
        })
    }

    fn insert_api_key(&self, key: &ApiKey, key_hash: SecretHash) -> StoreResult<()> {
        self.with_conn(|conn| insert_key(conn, key, key_hash))
    }

    fn find_api_key(
        &self,
        tenant: Option<TenantId>,
        key_hash: SecretHash,
    ) -> StoreResult<Option<ApiKey>> {
        self.with_conn(|conn| {
            let tenant = match tenant {
                Some(tenant) => tenant,
                None => match directory::legacy_key_tenant(conn, key_hash)? {
                    Some(tenant) => tenant,
                    None => return Ok(None),
                },
            };
            api_keys::table
                .filter(api_keys::tenant_id.eq(tenant.as_str()))
                .filter(api_keys::key_hash.eq(&key_hash.0[..]))
                .select(ApiKeyRow::as_select())
                .get_result(conn)
                .optional()?
                .map(ApiKeyRow::into_domain)
                .transpose()
        })
    }

    /// No cache here: `CachedAccess` is the one in front of this store.
    fn find_api_key_in_memory(&self, _key_hash: SecretHash) -> Option<Later<Option<ApiKey>>> {
        None
    }

    fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        self.with_conn(|conn| {
            api_keys::table
                .filter(api_keys::tenant_id.eq(tenant.as_str()))
                .order((api_keys::created_at, api_keys::id))
                .select(ApiKeyRow::as_select())
                .load(conn)?
                .into_iter()
                .map(ApiKeyRow::into_domain)
                .collect()
        })
    }

    fn delete_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<()> {
        self.in_transaction(|conn| {
            let deleted: Option<Vec<u8>> = diesel::delete(
                api_keys::table
                    .filter(api_keys::tenant_id.eq(tenant.as_str()))
                    .filter(api_keys::id.eq(id.as_str())),
            )
            .returning(api_keys::key_hash)
            .get_result(conn)
            .optional()?;
            let Some(hash) = deleted else {
                return Err(StoreError::NotFound.into());
            };
            directory::forget_legacy_key(conn, tenant, &hash)
        })
    }
}
