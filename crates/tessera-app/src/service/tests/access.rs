use mockall::predicate::eq;
use tessera_domain::{ApiKeyId, Label, PresentedApiKey, Role, TenantName};

use crate::model::{ApiKey, SecretHash};
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::service::SECRET_ATTEMPTS;
use crate::usecases::{AccessUseCases, Principal};
use crate::AppError;

fn label(name: &str) -> Label {
    Label::try_from(name.to_owned()).expect("valid label")
}

fn stored_key(role: Role) -> ApiKey {
    ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant(),
        name: label("ci"),
        role,
        created_at: now(),
    }
}

#[test]
fn authenticate_finds_the_key_by_the_hash_of_the_presented_secret() {
    let key = stored_key(Role::Issuer);
    let mut h = Harness::new();
    let found = key.clone();
    h.access
        .expect_find_api_key()
        .with(eq(None), eq(api_key_hash_of("tsk_presented")))
        .times(1)
        .returning(move |_, _| Ok(Some(found.clone())));
    let principal = h
        .build()
        .authenticate(&PresentedApiKey::new("tsk_presented"));
    assert_eq!(
        principal,
        Ok(Principal {
            tenant_id: key.tenant_id,
            key_id: key.id,
            role: Role::Issuer,
        })
    );
}

#[test]
fn authenticate_looks_a_routed_key_up_in_the_tenant_it_names() {
    let key = stored_key(Role::Admin);
    let secret = tessera_domain::ApiKeySecret::generate(&key.tenant_id);
    let mut h = Harness::new();
    let found = key.clone();
    h.access
        .expect_find_api_key()
        .with(
            eq(Some(key.tenant_id.clone())),
            eq(api_key_hash_of(secret.expose_secret())),
        )
        .times(1)
        .returning(move |_, _| Ok(Some(found.clone())));
    let principal = h
        .build()
        .authenticate(&PresentedApiKey::new(secret.expose_secret()))
        .expect("authenticated");
    assert_eq!(principal.tenant_id, key.tenant_id);
}

#[test]
fn authenticate_refuses_an_unknown_key_as_unauthorized() {
    let mut h = Harness::new();
    h.access
        .expect_find_api_key()
        .times(1)
        .returning(|_, _| Ok(None));
    assert_eq!(
        h.build().authenticate(&PresentedApiKey::new("tsk_unknown")),
        Err(AppError::Unauthorized)
    );
}

#[test]
fn authenticate_reports_an_unreachable_database_as_unavailable() {
    let mut h = Harness::new();
    h.access
        .expect_find_api_key()
        .returning(|_, _| Err(StoreError::Unavailable("down".to_owned())));
    assert_eq!(
        h.build().authenticate(&PresentedApiKey::new("tsk_x")),
        Err(AppError::Unavailable)
    );
}

#[test]
fn create_tenant_stores_an_admin_key_whose_secret_hashes_to_the_stored_hash() {
    let mut h = Harness::new();
    let seen = Recorder::new();
    let record = seen.clone();
    h.access
        .expect_create_tenant()
        .times(1)
        .returning(move |tenant, key, hash| {
            record.record((tenant.clone(), key.clone(), hash));
            Ok(())
        });
    let name = TenantName::try_from("Acme".to_owned()).expect("valid name");
    let created = h.build().create_tenant(name.clone()).expect("created");

    let [(stored_tenant, stored_key, stored_hash)] = seen.all().try_into().expect("one call");
    assert_eq!(created.tenant, stored_tenant);
    assert_eq!(created.tenant.name, name);
    assert_eq!(created.tenant.created_at, now());
    assert_eq!(created.admin_key.key, stored_key);
    assert_eq!(stored_key.role, Role::Admin);
    assert_eq!(stored_key.tenant_id, created.tenant.id);
    assert_eq!(stored_key.name.as_str(), "admin");
    assert!(created.admin_key.secret.expose_secret().starts_with("tsk_"));
    assert_eq!(
        PresentedApiKey::new(created.admin_key.secret.expose_secret()).tenant(),
        Some(created.tenant.id.clone()),
        "the key routes to its tenant"
    );
    assert_eq!(
        stored_hash,
        api_key_hash_of(created.admin_key.secret.expose_secret())
    );
}

#[test]
fn create_tenant_retries_a_colliding_secret_with_a_fresh_one() {
    let mut h = Harness::new();
    let hashes = Recorder::new();
    let first = hashes.clone();
    h.access
        .expect_create_tenant()
        .times(1)
        .returning(move |_, _, hash| {
            first.record(hash);
            Err(StoreError::DuplicateSecret)
        });
    let second = hashes.clone();
    h.access
        .expect_create_tenant()
        .times(1)
        .returning(move |_, _, hash| {
            second.record(hash);
            Ok(())
        });
    let name = TenantName::try_from("Acme".to_owned()).expect("valid name");
    let created = h.build().create_tenant(name).expect("created on retry");

    let [collided, stored]: [SecretHash; 2] = hashes.all().try_into().expect("two calls");
    assert_ne!(collided, stored, "the retry must draw a new secret");
    assert_eq!(
        stored,
        api_key_hash_of(created.admin_key.secret.expose_secret())
    );
}

#[test]
fn create_tenant_gives_up_with_internal_after_repeated_collisions() {
    let mut h = Harness::new();
    h.access
        .expect_create_tenant()
        .times(SECRET_ATTEMPTS)
        .returning(|_, _, _| Err(StoreError::DuplicateSecret));
    let name = TenantName::try_from("Acme".to_owned()).expect("valid name");
    assert!(matches!(
        h.build().create_tenant(name),
        Err(AppError::Internal(_))
    ));
}

#[test]
fn create_tenant_does_not_retry_other_store_failures() {
    let mut h = Harness::new();
    h.access
        .expect_create_tenant()
        .times(1)
        .returning(|_, _, _| Err(StoreError::Unavailable("down".to_owned())));
    let name = TenantName::try_from("Acme".to_owned()).expect("valid name");
    assert_eq!(h.build().create_tenant(name), Err(AppError::Unavailable));
}

#[test]
fn an_admin_creates_an_api_key_in_its_own_tenant() {
    let mut h = Harness::new();
    let seen = Recorder::new();
    let record = seen.clone();
    h.access
        .expect_insert_api_key()
        .times(1)
        .returning(move |key, hash| {
            record.record((key.clone(), hash));
            Ok(())
        });
    let created = h
        .build()
        .create_api_key(&admin(), label("ci"), Role::Redeemer)
        .expect("created");

    let [(stored_key, stored_hash)] = seen.all().try_into().expect("one call");
    assert_eq!(created.key, stored_key);
    assert_eq!(stored_key.tenant_id, tenant());
    assert_eq!(stored_key.role, Role::Redeemer);
    assert_eq!(stored_key.name, label("ci"));
    assert_eq!(stored_key.created_at, now());
    assert_eq!(stored_hash, api_key_hash_of(created.secret.expose_secret()));
}

#[test]
fn create_api_key_retries_a_colliding_secret_with_a_fresh_one() {
    let mut h = Harness::new();
    let hashes = Recorder::new();
    let first = hashes.clone();
    h.access
        .expect_insert_api_key()
        .times(1)
        .returning(move |_, hash| {
            first.record(hash);
            Err(StoreError::DuplicateSecret)
        });
    let second = hashes.clone();
    h.access
        .expect_insert_api_key()
        .times(1)
        .returning(move |_, hash| {
            second.record(hash);
            Ok(())
        });
    let created = h
        .build()
        .create_api_key(&admin(), label("ci"), Role::Issuer)
        .expect("created on retry");
    let [collided, stored]: [SecretHash; 2] = hashes.all().try_into().expect("two calls");
    assert_ne!(collided, stored);
    assert_eq!(stored, api_key_hash_of(created.secret.expose_secret()));
}

#[test]
fn create_api_key_gives_up_with_internal_after_repeated_collisions() {
    let mut h = Harness::new();
    h.access
        .expect_insert_api_key()
        .times(SECRET_ATTEMPTS)
        .returning(|_, _| Err(StoreError::DuplicateSecret));
    assert!(matches!(
        h.build()
            .create_api_key(&admin(), label("ci"), Role::Issuer),
        Err(AppError::Internal(_))
    ));
}

#[test]
fn only_admins_create_api_keys() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().create_api_key(&principal(role), label("ci"), Role::Admin),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn list_api_keys_reads_only_the_callers_tenant() {
    let keys = vec![stored_key(Role::Admin), stored_key(Role::Issuer)];
    let mut h = Harness::new();
    let listed = keys.clone();
    h.access
        .expect_list_api_keys()
        .with(eq(tenant()))
        .times(1)
        .returning(move |_| Ok(listed.clone()));
    assert_eq!(h.build().list_api_keys(&admin()), Ok(keys));
}

#[test]
fn only_admins_list_api_keys() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().list_api_keys(&principal(role)),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn delete_api_key_is_scoped_to_the_callers_tenant() {
    let id = ApiKeyId::generate();
    let mut h = Harness::new();
    h.access
        .expect_delete_api_key()
        .with(eq(tenant()), eq(id.clone()))
        .times(1)
        .returning(|_, _| Ok(()));
    assert_eq!(h.build().delete_api_key(&admin(), &id), Ok(()));
}

#[test]
fn deleting_an_unknown_api_key_is_not_found() {
    let mut h = Harness::new();
    h.access
        .expect_delete_api_key()
        .returning(|_, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build().delete_api_key(&admin(), &ApiKeyId::generate()),
        Err(AppError::NotFound)
    );
}

#[test]
fn only_admins_delete_api_keys() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().delete_api_key(&principal(role), &ApiKeyId::generate()),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}
