//! Unique violations are classified by the constraint's base name: on Citus the
//! violated constraint is the shard's copy, named `<name>_<shard id>`. Here the
//! constraints are renamed so on plain PostgreSQL, and the store must answer as
//! it does with the migrations' names (409s, a retried secret), not 500.
#![allow(clippy::unwrap_used)]
mod common;

use common::{fixture, hash, new_ticket, now, subject};
use diesel::{sql_query, RunQueryDsl};
use tessera_app::model::ApiKey;
use tessera_app::ports::{AccessStore, StoreError, TicketStore};
use tessera_domain::{ApiKeyId, Label, Role};

/// Renames each constraint or index as a Citus shard (id 102114) names it.
fn rename_as_shard(f: &common::Fixture) {
    let mut conn = f.db.pool().get().unwrap();
    for statement in [
        "ALTER TABLE tickets RENAME CONSTRAINT tickets_code_hash_unique TO tickets_code_hash_unique_102114",
        "ALTER TABLE tickets RENAME CONSTRAINT tickets_link_hash_unique TO tickets_link_hash_unique_102114",
        "ALTER INDEX tickets_one_active_per_subject RENAME TO tickets_one_active_per_subject_102114",
        "ALTER TABLE api_keys RENAME CONSTRAINT api_keys_key_hash_unique TO api_keys_key_hash_unique_102114",
    ] {
        sql_query(statement).execute(&mut conn).unwrap();
    }
}

#[test]
fn a_shard_suffixed_code_clash_is_code_taken_and_a_link_clash_a_duplicate_secret() {
    let f = fixture();
    rename_as_shard(&f);
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let mut first = new_ticket(&program, "code", |_| {});
    first.link_hash = Some(hash("link"));
    f.store.issue(&first, now()).unwrap();

    let same_code = new_ticket(&program, "code", |_| {});
    assert_eq!(f.store.issue(&same_code, now()), Err(StoreError::CodeTaken));
    let mut same_link = new_ticket(&program, "other", |_| {});
    same_link.link_hash = Some(hash("link"));
    assert_eq!(
        f.store.issue(&same_link, now()),
        Err(StoreError::DuplicateSecret)
    );
}

#[test]
fn a_shard_suffixed_subject_clash_is_subject_has_active_ticket() {
    let f = fixture();
    rename_as_shard(&f);
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.one_active_per_subject = true);
    let owned = |code: &str| new_ticket(&program, code, |t| t.subject = Some(subject("ann")));
    f.store.issue(&owned("one"), now()).unwrap();
    assert_eq!(
        f.store.issue(&owned("two"), now()),
        Err(StoreError::SubjectHasActiveTicket)
    );
}

#[test]
fn a_shard_suffixed_key_clash_is_a_duplicate_secret() {
    let f = fixture();
    rename_as_shard(&f);
    let tenant = common::tenant(&f.store);
    let key = ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: Label::try_from("again".to_owned()).unwrap(),
        role: Role::Issuer,
        created_at: now(),
    };
    // `common::tenant` stored the admin key under this hash.
    assert_eq!(
        f.store.insert_api_key(&key, hash(tenant.as_str())),
        Err(StoreError::DuplicateSecret)
    );
}
