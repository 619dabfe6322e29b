#![allow(clippy::unwrap_used)] // fixture helpers unwrap as the tests do

mod common;

use common::{at, fixture, hash};
use tessera_app::model::ApiKey;
use tessera_app::ports::{AccessStore, StoreError};
use tessera_domain::{ApiKeyId, Label, Role, TenantId};

fn key(tenant: &TenantId, name: &str, role: Role, seconds: i64) -> ApiKey {
    ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: Label::try_from(name.to_owned()).unwrap(),
        role,
        created_at: at(seconds),
    }
}

#[test]
fn the_first_admin_key_is_found_by_its_hash() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let found = f
        .store
        .find_api_key(Some(tenant.clone()), hash(tenant.as_str()))
        .unwrap()
        .unwrap();
    assert_eq!(found.tenant_id, tenant);
    assert_eq!(found.role, Role::Admin);
    assert_eq!(
        f.store
            .find_api_key(Some(tenant.clone()), hash("unknown"))
            .unwrap(),
        None
    );
}

#[test]
fn keys_are_listed_oldest_first_and_deleted_keys_stop_working() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let late = key(&tenant, "late", Role::Redeemer, 50);
    let early = key(&tenant, "early", Role::Issuer, 10);
    f.store.insert_api_key(&late, hash("late")).unwrap();
    f.store.insert_api_key(&early, hash("early")).unwrap();
    let names: Vec<_> = f
        .store
        .list_api_keys(&tenant)
        .unwrap()
        .into_iter()
        .map(|key| key.name.as_str().to_owned())
        .collect();
    assert_eq!(names, ["admin", "early", "late"]);
    assert_eq!(
        f.store
            .find_api_key(Some(tenant.clone()), hash("late"))
            .unwrap(),
        Some(late.clone())
    );

    f.store.delete_api_key(&tenant, &late.id).unwrap();
    assert_eq!(
        f.store
            .find_api_key(Some(tenant.clone()), hash("late"))
            .unwrap(),
        None
    );
    assert_eq!(
        f.store.delete_api_key(&tenant, &late.id),
        Err(StoreError::NotFound)
    );
}

#[test]
fn a_duplicate_key_hash_is_a_duplicate_secret_within_its_tenant() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let other = common::tenant(&f.store);
    let first = key(&tenant, "a", Role::Admin, 1);
    f.store.insert_api_key(&first, hash("same")).unwrap();
    assert_eq!(
        f.store
            .insert_api_key(&key(&tenant, "b", Role::Admin, 1), hash("same")),
        Err(StoreError::DuplicateSecret)
    );
    // A key names its tenant (and its hash covers that name), so the index is
    // per tenant; the same hash elsewhere finds only that tenant's key.
    let elsewhere = key(&other, "c", Role::Issuer, 1);
    f.store.insert_api_key(&elsewhere, hash("same")).unwrap();
    assert_eq!(
        f.store
            .find_api_key(Some(tenant.clone()), hash("same"))
            .unwrap(),
        Some(first)
    );
    assert_eq!(
        f.store
            .find_api_key(Some(other.clone()), hash("same"))
            .unwrap(),
        Some(elsewhere)
    );
    // A routed lookup never falls back to another tenant or the legacy directory.
    let third = common::tenant(&f.store);
    assert_eq!(
        f.store.find_api_key(Some(third), hash("same")).unwrap(),
        None
    );
    assert_eq!(f.store.find_api_key(None, hash("same")).unwrap(), None);
}

#[test]
fn another_tenants_keys_are_invisible() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let other = common::tenant(&f.store);
    let secret = key(&tenant, "mine", Role::Issuer, 1);
    f.store.insert_api_key(&secret, hash("mine")).unwrap();
    assert_eq!(
        f.store.delete_api_key(&other, &secret.id),
        Err(StoreError::NotFound)
    );
    assert_eq!(f.store.list_api_keys(&other).unwrap().len(), 1);
    assert_eq!(f.store.list_api_keys(&tenant).unwrap().len(), 2);
}
