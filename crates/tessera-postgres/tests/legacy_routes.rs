//! Keys, programs and links made before lookups were routed by tenant (migration
//! 2026-12-01-000200_tenant_routed_lookups) keep working after it: the migration
//! lists them in its directories and the stores route the old shapes through
//! them. Rows are made on the schema as it was, then the rest is migrated.
#![allow(clippy::unwrap_used)]
mod common;

use common::{at, hash, new_program, now};
use diesel::sql_types::{Bytea, Text};
use diesel::{sql_query, PgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use tessera_app::links::LinkStore;
use tessera_app::ports::{AccessStore, ProgramStore, TicketStore};
use tessera_postgres::testing::TestDatabase;
use tessera_postgres::{PgStore, MIGRATIONS};

const ROUTED: &str = "2026-12-01-000200";

/// Runs the migrations older than `ROUTED`, or (`before == false`) the rest.
fn migrate(conn: &mut PgConnection, before: bool) {
    // `pending_migrations` also makes diesel's bookkeeping table on first use.
    let mut pending = conn.pending_migrations(MIGRATIONS).unwrap();
    pending.sort_by_key(|m| m.name().to_string());
    for migration in pending {
        let older = migration.name().to_string().as_str() < ROUTED;
        if older == before {
            conn.run_migration(&*migration).unwrap();
        }
    }
}

/// A tenant, its admin key, a program and a linked ticket as the old schema held
/// them, then the routed schema; returns the store and what was made.
fn made_before_routing() -> (
    TestDatabase,
    PgStore,
    tessera_domain::Program,
    tessera_app::model::NewTicket,
) {
    let db = TestDatabase::empty();
    let store = PgStore::new(db.pool());
    let mut conn = db.pool().get().unwrap();
    migrate(&mut conn, true);
    let tenant = common::tenant(&store);
    let program = new_program(&tenant, |new| new.max_redemptions = common::limit(2));
    // ProgramStore::insert writes the directory, which the old schema lacks.
    sql_query(
        "INSERT INTO programs (tenant_id, id, object_id, ntp_class, max_tickets, max_redemptions, \
         start_time, end_time, ticket_length, alphabet, one_active_per_subject, state, version, \
         created_at, updated_at) \
         VALUES ($1, $2, 'iq__obj', 1, 0, 2, $3, $4, 6, 'alphanumeric', false, 'active', 1, $5, $5)",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(program.id.as_str())
    .bind::<diesel::sql_types::Timestamptz, _>(program.window.start())
    .bind::<diesel::sql_types::Timestamptz, _>(program.window.end())
    .bind::<diesel::sql_types::Timestamptz, _>(at(-50))
    .execute(&mut conn)
    .unwrap();
    let mut ticket = common::new_ticket(&program, "old-code", |_| {});
    ticket.link_hash = Some(hash("old-link"));
    store.issue(&ticket, now()).unwrap();
    migrate(&mut conn, false);
    (db, store, program, ticket)
}

#[test]
fn an_old_key_program_and_link_still_work_after_migrating() {
    let (_db, store, program, ticket) = made_before_routing();
    let tenant = program.tenant_id.clone();

    let key = store.find_api_key(None, hash(tenant.as_str())).unwrap();
    assert_eq!(key.map(|k| k.tenant_id), Some(tenant.clone()));
    let located = store.locate(&program.id).unwrap().expect("located");
    assert_eq!(located.tenant_id, tenant);
    let linked = store
        .find_by_link(None, hash("old-link"))
        .unwrap()
        .expect("linked");
    assert_eq!(linked.view.ticket.id, ticket.ticket.id);
    assert_eq!(linked.code_hash, hash("old-code"));

    // Unknown old-shaped secrets still find nothing.
    assert_eq!(store.find_api_key(None, hash("never")).unwrap(), None);
    assert_eq!(store.find_by_link(None, hash("never")).unwrap(), None);
}

#[test]
fn a_deleted_old_key_stops_working_and_leaves_its_directory() {
    let (db, store, program, _) = made_before_routing();
    let tenant = program.tenant_id.clone();
    let admin = store.list_api_keys(&tenant).unwrap().remove(0);
    store.delete_api_key(&tenant, &admin.id).unwrap();
    assert_eq!(
        store.find_api_key(None, hash(tenant.as_str())).unwrap(),
        None
    );
    let mut conn = db.pool().get().unwrap();
    let left: Vec<Listed> =
        sql_query("SELECT tenant_id FROM legacy_api_key_directory WHERE key_hash = $1")
            .bind::<Bytea, _>(&hash(tenant.as_str()).0[..])
            .load(&mut conn)
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn new_programs_are_routed_and_a_deleted_one_is_unlisted() {
    let f = common::fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    assert_eq!(
        f.store.locate(&program.id).unwrap().map(|p| p.tenant_id),
        Some(tenant.clone())
    );
    f.store.delete(&tenant, &program.id, now()).unwrap();
    assert_eq!(f.store.locate(&program.id).unwrap(), None);
    let mut conn = f.db.pool().get().unwrap();
    let left: Vec<Listed> =
        sql_query("SELECT tenant_id FROM program_directory WHERE program_id = $1")
            .bind::<Text, _>(program.id.as_str())
            .load(&mut conn)
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_routing_migration_reverts_and_applies_again() {
    let (db, store, program, _) = made_before_routing();
    let mut conn = db.pool().get().unwrap();
    conn.revert_last_migration(MIGRATIONS).unwrap();
    conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert!(store.locate(&program.id).unwrap().is_some());
    assert!(store
        .find_by_link(None, hash("old-link"))
        .unwrap()
        .is_some());
}

#[derive(diesel::QueryableByName, Debug)]
struct Listed {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    tenant_id: String,
}
