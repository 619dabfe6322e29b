//! The per-process API-key cache (issue 12): hits, misses, a delete seen at once by
//! another process, and a lost listener that turns the cache off; and the
//! lookup from memory, which answers as cached until a confirming lookup hears
//! of a delete.
#![allow(clippy::unwrap_used)]
mod common;

use common::{block_on, fixture, hash, Count};
use diesel::sql_types::Integer;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::model::ApiKey;
use tessera_app::ports::AccessStore;
use tessera_domain::{ApiKeyId, Label, Role, TenantId};
use tessera_postgres::CachedAccess;

/// The key as the cache vouches for it from memory (`None`: it cannot).
fn in_memory(cache: &CachedAccess, key_hash: tessera_app::model::SecretHash) -> Option<ApiKey> {
    let found = cache
        .find_api_key_in_memory(key_hash)
        .expect("the cache answers from memory");
    block_on(found).unwrap()
}

fn admin_key(cache: &CachedAccess, tenant: &TenantId) -> ApiKey {
    cache.list_api_keys(tenant).unwrap().remove(0)
}

/// Runs `statement` on the test database, outside the caches.
fn execute(f: &common::Fixture, statement: &str) {
    let mut conn = f.db.pool().get().unwrap();
    sql_query(statement).execute(&mut conn).unwrap();
}

/// Deletes the tenant's keys behind the caches' backs: no notice is sent.
fn delete_silently(f: &common::Fixture, tenant: &TenantId) {
    execute(f, "ALTER TABLE api_keys DISABLE TRIGGER api_keys_changed");
    let mut conn = f.db.pool().get().unwrap();
    sql_query("DELETE FROM api_keys WHERE tenant_id = $1")
        .bind::<diesel::sql_types::Text, _>(tenant.as_str())
        .execute(&mut conn)
        .unwrap();
    execute(f, "ALTER TABLE api_keys ENABLE TRIGGER api_keys_changed");
}

#[test]
fn a_known_key_is_served_from_the_cache_and_an_unknown_one_is_not_remembered() {
    let f = fixture();
    let cache = CachedAccess::new(f.store.clone(), f.db.url());
    let tenant = common::tenant(&f.store);
    assert_eq!(
        cache
            .find_api_key(Some(tenant.clone()), hash("later"))
            .unwrap(),
        None
    );
    let later = ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: Label::try_from("later".to_owned()).unwrap(),
        role: Role::Redeemer,
        created_at: common::at(0),
    };
    cache.insert_api_key(&later, hash("later")).unwrap();
    assert_eq!(
        cache
            .find_api_key(Some(tenant.clone()), hash("later"))
            .unwrap(),
        Some(later.clone()),
        "a miss is not cached: the new key is found at once"
    );
    assert!(cache.is_listening());
    // Gone from the table without a notice: only a cache hit still finds it.
    delete_silently(&f, &tenant);
    assert_eq!(
        cache
            .find_api_key(Some(tenant.clone()), hash("later"))
            .unwrap(),
        Some(later)
    );
    assert_eq!(
        f.store
            .find_api_key(Some(tenant.clone()), hash("later"))
            .unwrap(),
        None
    );
}

#[test]
fn a_key_deleted_through_one_process_is_refused_at_once_by_another() {
    let f = fixture();
    let deleting = CachedAccess::new(f.store.clone(), f.db.url());
    let other = CachedAccess::new(f.store.clone(), f.db.url());
    let tenant = common::tenant(&f.store);
    let key = admin_key(&deleting, &tenant);
    let secret = hash(tenant.as_str());
    assert_eq!(
        other.find_api_key(Some(tenant.clone()), secret).unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        deleting.find_api_key(Some(tenant.clone()), secret).unwrap(),
        Some(key.clone())
    );
    deleting.delete_api_key(&tenant, &key.id).unwrap();
    assert_eq!(
        deleting.find_api_key(Some(tenant.clone()), secret).unwrap(),
        None
    );
    assert_eq!(
        other.find_api_key(Some(tenant.clone()), secret).unwrap(),
        None
    );
}

#[test]
fn deleting_a_tenant_empties_every_cache() {
    let f = fixture();
    let cache = CachedAccess::new(f.store.clone(), f.db.url());
    let tenant = common::tenant(&f.store);
    let secret = hash(tenant.as_str());
    assert!(cache
        .find_api_key(Some(tenant.clone()), secret)
        .unwrap()
        .is_some());
    let mut conn = f.db.pool().get().unwrap();
    // The keys go by the tenant's cascade, which notifies too.
    sql_query("DELETE FROM tenants WHERE id = $1")
        .bind::<diesel::sql_types::Text, _>(tenant.as_str())
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        cache.find_api_key(Some(tenant.clone()), secret).unwrap(),
        None
    );
}

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

#[test]
fn a_lost_listener_empties_the_cache_and_bypasses_it() {
    let f = fixture();
    let cache = CachedAccess::new(f.store.clone(), f.db.url());
    let tenant = common::tenant(&f.store);
    let secret = hash(tenant.as_str());
    assert!(cache
        .find_api_key(Some(tenant.clone()), secret)
        .unwrap()
        .is_some());
    delete_silently(&f, &tenant);
    assert!(
        cache
            .find_api_key(Some(tenant.clone()), secret)
            .unwrap()
            .is_some(),
        "served from the cache"
    );

    let mut conn = f.db.pool().get().unwrap();
    let listener: Backend = sql_query(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind::<diesel::sql_types::Text, _>(tessera_postgres::LISTENER_NAME)
    .get_result(&mut conn)
    .unwrap();
    sql_query("SELECT pg_terminate_backend($1)")
        .bind::<Integer, _>(listener.pid)
        .execute(&mut conn)
        .unwrap();
    // Waits for the backend to be gone (a condition, not a duration).
    for _ in 0..500 {
        let left: Count = sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1")
            .bind::<Integer, _>(listener.pid)
            .get_result(&mut conn)
            .unwrap();
        if left.n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        cache.find_api_key(Some(tenant.clone()), secret).unwrap(),
        None,
        "without a listener the cache is emptied and the database answers"
    );
    assert!(!cache.is_listening());
    assert_eq!(
        in_memory(&cache, secret),
        None,
        "memory vouches for nothing"
    );
}

#[test]
fn memory_answers_as_cached_until_a_confirming_lookup_hears_of_the_delete() {
    let f = fixture();
    let cache = CachedAccess::new(f.store.clone(), f.db.url());
    let deleting = CachedAccess::new(f.store.clone(), f.db.url());
    let tenant = common::tenant(&f.store);
    let key = admin_key(&cache, &tenant);
    let secret = hash(tenant.as_str());
    assert_eq!(in_memory(&cache, secret), None, "not cached yet: a miss");
    assert_eq!(
        cache.find_api_key(Some(tenant.clone()), secret).unwrap(),
        Some(key.clone())
    );
    assert_eq!(in_memory(&cache, secret), Some(key.clone()));
    // Deleted through another process: memory has not heard yet (the statement
    // that would spend a use checks the key: tests/group_commit), ...
    deleting.delete_api_key(&tenant, &key.id).unwrap();
    assert_eq!(in_memory(&cache, secret), Some(key));
    // ... and the confirming lookup refuses it at once and empties the cache.
    assert_eq!(
        cache.find_api_key(Some(tenant.clone()), secret).unwrap(),
        None
    );
    assert_eq!(in_memory(&cache, secret), None);
}

#[test]
fn the_store_itself_keeps_no_cache() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    assert!(f
        .store
        .find_api_key_in_memory(hash(tenant.as_str()))
        .is_none());
}
