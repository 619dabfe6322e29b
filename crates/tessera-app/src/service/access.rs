use tessera_domain::{
    ApiKeyId, ApiKeySecret, Label, Permission, PresentedApiKey, Role, TenantId, TenantName,
};

use super::{require, Tessera, SECRET_ATTEMPTS};
use crate::model::{ApiKey, Tenant};
use crate::ports::StoreError;
use crate::usecases::{AccessUseCases, CreatedKey, CreatedTenant, Principal};
use crate::{AppError, AppResult};

impl Tessera {
    fn new_key(&self, tenant_id: &TenantId, name: Label, role: Role) -> (ApiKey, ApiKeySecret) {
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: tenant_id.clone(),
            name,
            role,
            created_at: self.ports.clock.now(),
        };
        (key, ApiKeySecret::generate(tenant_id))
    }
}

impl AccessUseCases for Tessera {
    fn authenticate(&self, presented_key: &PresentedApiKey) -> AppResult<Principal> {
        let hash = self
            .ports
            .hasher
            .api_key_hash(presented_key.expose_secret());
        let key = self
            .ports
            .access
            .find_api_key(presented_key.tenant(), hash)?
            .ok_or(AppError::Unauthorized)?;
        Ok(Principal::from(key))
    }

    fn create_tenant(&self, name: TenantName) -> AppResult<CreatedTenant> {
        let tenant = Tenant {
            id: TenantId::generate(),
            name,
            created_at: self.ports.clock.now(),
        };
        let admin_name = Label::try_from("admin".to_owned())?;
        for _ in 0..SECRET_ATTEMPTS {
            let (key, secret) = self.new_key(&tenant.id, admin_name.clone(), Role::Admin);
            let hash = self.ports.hasher.api_key_hash(secret.expose_secret());
            match self.ports.access.create_tenant(&tenant, &key, hash) {
                Ok(()) => {
                    return Ok(CreatedTenant {
                        tenant,
                        admin_key: CreatedKey { key, secret },
                    })
                }
                Err(StoreError::DuplicateSecret) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::DuplicateSecret.into())
    }

    fn create_api_key(&self, caller: &Principal, name: Label, role: Role) -> AppResult<CreatedKey> {
        require(caller, Permission::ManageKeys)?;
        for _ in 0..SECRET_ATTEMPTS {
            let (key, secret) = self.new_key(&caller.tenant_id, name.clone(), role);
            let hash = self.ports.hasher.api_key_hash(secret.expose_secret());
            match self.ports.access.insert_api_key(&key, hash) {
                Ok(()) => return Ok(CreatedKey { key, secret }),
                Err(StoreError::DuplicateSecret) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::DuplicateSecret.into())
    }

    fn list_api_keys(&self, caller: &Principal) -> AppResult<Vec<ApiKey>> {
        require(caller, Permission::ManageKeys)?;
        Ok(self.ports.access.list_api_keys(&caller.tenant_id)?)
    }

    fn delete_api_key(&self, caller: &Principal, id: &ApiKeyId) -> AppResult<()> {
        require(caller, Permission::ManageKeys)?;
        Ok(self.ports.access.delete_api_key(&caller.tenant_id, id)?)
    }
}
