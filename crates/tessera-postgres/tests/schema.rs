//! The migrated schema can be distributed by tenant (Citus): read from the
//! catalog, every primary key and unique index of a tenant-owned table (one with
//! a `tenant_id` column) starts with `tenant_id`, and every foreign key holds it.
//! A table meant to be replicated to every node instead says so in its comment
//! (`reference table: …why…`) and is exempt; a table without `tenant_id` is
//! either such a reference table or named below with the reason it is neither.
#![allow(clippy::unwrap_used)]

use diesel::sql_types::{Nullable, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_postgres::testing::TestDatabase;

/// Tables with no `tenant_id` that are not reference tables, and why.
const NOT_TENANT_OWNED: &[(&str, &str)] = &[
    (
        "tenants",
        "the tenant list itself, distributed by its `id` (colocation group leader)",
    ),
    (
        "idempotency_keys",
        "distributed by `scope` (a tenant id, or the program id of a public redemption); joins nothing",
    ),
    (
        "throttle_windows",
        "failure counts per client network and program for one minute, shared by replicas; a local (unlogged) table of the coordinator",
    ),
    (
        "__diesel_schema_migrations",
        "diesel's bookkeeping: stays a local table on the coordinator",
    ),
];

#[derive(QueryableByName, Debug)]
struct Table {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    tenant_owned: bool,
    #[diesel(sql_type = Nullable<Text>)]
    comment: Option<String>,
}

#[derive(QueryableByName, Debug)]
struct Named {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
}

fn tables(db: &TestDatabase) -> Vec<Table> {
    let mut conn = db.pool().get().unwrap();
    sql_query(
        "SELECT c.relname::text AS name, \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS tenant_owned, \
                obj_description(c.oid, 'pg_class') AS comment \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
         ORDER BY 1",
    )
    .load(&mut conn)
    .unwrap()
}

fn is_reference(table: &Table) -> bool {
    table
        .comment
        .as_deref()
        .is_some_and(|c| c.starts_with("reference table: ") && c.len() > "reference table: ".len())
}

/// Unique indexes (primary keys included) of tenant-owned tables whose first
/// column is not `tenant_id`.
fn unique_indexes_not_led_by_tenant(db: &TestDatabase) -> Vec<Named> {
    let mut conn = db.pool().get().unwrap();
    sql_query(
        "SELECT t.relname::text AS table_name, i.relname::text AS name \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND x.indisunique \
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid \
                       AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
           AND coalesce(obj_description(t.oid, 'pg_class'), '') NOT LIKE 'reference table: %' \
           AND (x.indkey[0] = 0 OR (SELECT a.attname FROM pg_attribute a \
                WHERE a.attrelid = t.oid AND a.attnum = x.indkey[0]) <> 'tenant_id') \
         ORDER BY 1, 2",
    )
    .load(&mut conn)
    .unwrap()
}

/// Foreign keys of tenant-owned tables that do not hold `tenant_id`.
fn foreign_keys_without_tenant(db: &TestDatabase) -> Vec<Named> {
    let mut conn = db.pool().get().unwrap();
    sql_query(
        "SELECT t.relname::text AS table_name, k.conname::text AS name \
         FROM pg_constraint k \
         JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND k.contype = 'f' \
           AND coalesce(obj_description(t.oid, 'pg_class'), '') NOT LIKE 'reference table: %' \
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid \
                           AND a.attname = 'tenant_id' AND a.attnum = ANY (k.conkey)) \
         ORDER BY 1, 2",
    )
    .load(&mut conn)
    .unwrap()
}

#[test]
fn every_unique_index_of_a_tenant_owned_table_starts_with_tenant_id() {
    let db = TestDatabase::new();
    let offending = unique_indexes_not_led_by_tenant(&db);
    assert!(offending.is_empty(), "not led by tenant_id: {offending:?}");
}

#[test]
fn every_foreign_key_of_a_tenant_owned_table_holds_tenant_id() {
    let db = TestDatabase::new();
    let offending = foreign_keys_without_tenant(&db);
    assert!(offending.is_empty(), "without tenant_id: {offending:?}");
}

#[test]
fn every_table_is_tenant_owned_a_reference_table_or_listed_with_a_reason() {
    let db = TestDatabase::new();
    let all = tables(&db);
    let unaccounted: Vec<&str> = all
        .iter()
        .filter(|t| !t.tenant_owned && !is_reference(t))
        .filter(|t| !NOT_TENANT_OWNED.iter().any(|(name, _)| *name == t.name))
        .map(|t| t.name.as_str())
        .collect();
    assert!(
        unaccounted.is_empty(),
        "unaccounted tables: {unaccounted:?}"
    );
    // The list holds only what the schema still has: no stale exemption.
    for (name, _) in NOT_TENANT_OWNED {
        assert!(
            all.iter().any(|t| t.name == *name && !t.tenant_owned),
            "{name} is listed but is gone or now has tenant_id"
        );
    }
    let references: Vec<&str> = all
        .iter()
        .filter(|t| is_reference(t))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        references,
        [
            "key_envelope",
            "legacy_api_key_directory",
            "legacy_link_directory",
            "program_directory"
        ]
    );
}

/// The checks fail on the shapes the issue found (so they can fail at all).
#[test]
fn the_checks_catch_a_tenant_less_unique_index_and_foreign_key() {
    let db = TestDatabase::new();
    let mut conn = db.pool().get().unwrap();
    for statement in [
        "CREATE UNIQUE INDEX programs_id_unique ON programs (id)",
        "CREATE TABLE probe (tenant_id text NOT NULL, ticket_id text NOT NULL, \
         program_id text NOT NULL, PRIMARY KEY (ticket_id, tenant_id))",
        "ALTER TABLE probe ADD CONSTRAINT probe_program FOREIGN KEY (program_id) \
         REFERENCES program_directory (program_id)",
        "CREATE TABLE stray (id text PRIMARY KEY)",
    ] {
        sql_query(statement).execute(&mut conn).unwrap();
    }
    let names = |rows: Vec<Named>| -> Vec<String> {
        rows.into_iter()
            .map(|r| format!("{}.{}", r.table_name, r.name))
            .collect()
    };
    assert_eq!(
        names(unique_indexes_not_led_by_tenant(&db)),
        ["probe.probe_pkey", "programs.programs_id_unique"]
    );
    assert_eq!(
        names(foreign_keys_without_tenant(&db)),
        ["probe.probe_program"]
    );
    assert!(tables(&db)
        .iter()
        .any(|t| t.name == "stray" && !t.tenant_owned && !is_reference(t)));
}
