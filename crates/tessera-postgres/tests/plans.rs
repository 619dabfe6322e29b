//! Plans that cannot go wrong (issue 12): right after a bulk insert, with no
//! ANALYZE and with the generic plan PL/pgSQL and prepared statements keep for a
//! connection's life, every hot statement probes its unique index.
//!
//! EXPLAIN cannot look inside a function, so each statement of `tessera_redeem`
//! (and its classification, the standalone use, the API-key lookup, issuance) is
//! run here in the same shape, as a prepared statement forced to its generic plan.
#![allow(clippy::unwrap_used)]

use diesel::sql_types::Text;
use diesel::{sql_query, Connection, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::Value;
use tessera_postgres::testing::TestDatabase;

const TICKETS: i64 = 100_000;

#[derive(QueryableByName)]
struct Explained {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

#[derive(QueryableByName)]
struct Stats {
    #[diesel(sql_type = diesel::sql_types::Float)]
    reltuples: f32,
}

/// One tenant, one program with 100,000 tickets and as many standalone tickets,
/// inserted in bulk and never analysed.
fn fresh_bulk(conn: &mut PgConnection) {
    for statement in [
        "INSERT INTO tenants VALUES ('ten_a', 'A', now())",
        "INSERT INTO api_keys VALUES ('ten_a', 'key_a', 'k', 'admin', sha256('key'::bytea), now())",
        "INSERT INTO programs (tenant_id, id, object_id, ntp_class, max_tickets, max_redemptions, \
         start_time, end_time, ticket_length, alphabet, one_active_per_subject, state, version, \
         created_at, updated_at) VALUES ('ten_a', 'prg_a', 'iq__o', 1, 0, 1, now() - interval '1 day', \
         now() + interval '1 day', 8, 'numeric', false, 'active', 1, now(), now())",
    ] {
        sql_query(statement).execute(conn).unwrap();
    }
    sql_query(format!(
        "INSERT INTO tickets (tenant_id, id, program_id, code_hash, state, created_at, version) \
         SELECT 'ten_a', 'tkt_' || g, 'prg_a', sha256(g::text::bytea), 'active', now(), 1 \
         FROM generate_series(1, {TICKETS}) g"
    ))
    .execute(conn)
    .unwrap();
    sql_query(format!(
        "INSERT INTO standalone_tickets (tenant_id, id, token_hash, total_uses, uses_left, created_at) \
         SELECT 'ten_a', 'tkt_s' || g, sha256(('s' || g)::bytea), 3, 3, now() \
         FROM generate_series(1, {TICKETS}) g"
    ))
    .execute(conn)
    .unwrap();
}

/// Every scan (node type, relation, index) of a JSON plan, depth first. A
/// ModifyTable node names its target but reads nothing itself.
fn scans(node: &Value, out: &mut Vec<(String, String, String)>) {
    let kind = node["Node Type"].as_str().unwrap_or_default().to_owned();
    if let Some(relation) = node
        .get("Relation Name")
        .and_then(Value::as_str)
        .filter(|_| kind != "ModifyTable")
    {
        let index = node
            .get("Index Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        out.push((kind, relation.to_owned(), index));
    }
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        scans(child, out);
    }
}

/// The scans of `statement`'s generic plan, prepared with `types` and executed
/// with `args`.
fn generic_plan(
    conn: &mut PgConnection,
    types: &str,
    statement: &str,
    args: &str,
) -> Vec<(String, String, String)> {
    sql_query("DEALLOCATE ALL").execute(conn).unwrap();
    sql_query(format!("PREPARE hot({types}) AS {statement}"))
        .execute(conn)
        .unwrap();
    let explained: Explained = sql_query(format!("EXPLAIN (FORMAT JSON) EXECUTE hot({args})"))
        .get_result(conn)
        .unwrap();
    let plan: Value = serde_json::from_str(&explained.plan).unwrap();
    let mut out = Vec::new();
    scans(&plan[0]["Plan"], &mut out);
    out
}

/// `relation` is read only by an index scan of `index` in the plan.
fn assert_probes(plan: &[(String, String, String)], relation: &str, indexes: &[&str]) {
    let reads: Vec<_> = plan.iter().filter(|(_, rel, _)| rel == relation).collect();
    assert!(!reads.is_empty(), "{relation} is not read: {plan:?}");
    for (kind, _, index) in reads {
        assert!(
            matches!(kind.as_str(), "Index Scan" | "Index Only Scan")
                && indexes.contains(&index.as_str()),
            "{relation} is read by {kind} {index}, not a probe of {indexes:?}: {plan:?}"
        );
    }
}

const TICKET_PROBE: &[&str] = &["tickets_code_hash_unique"];
const PROGRAM_PROBE: &[&str] = &["programs_probe", "programs_pkey"];

/// The conditional UPDATE of `tessera_redeem` (migration `email_lock_expiry`),
/// its parameters as placeholders; `tessera_hold`'s has the same WHERE.
const REDEEM: &str = "UPDATE tickets t \
    SET redemptions = t.redemptions + 1, failed_attempts = 0, email_locks = 0, last_redeemed_at = $4 \
    FROM programs p \
    WHERE t.tenant_id = $1 AND t.code_hash = $2 AND t.program_id = $3 \
      AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
      AND p.state = 'active' AND p.start_time <= $4 AND $4 < p.end_time \
      AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= $4)) \
      AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions) \
      AND (t.email_normalized IS NULL OR t.email_normalized = $5) \
      AND (t.per_redeemer_limit IS NULL OR t.id = $6) \
    RETURNING t.id, t.payload, p.object_id, p.group_addresses";
const REDEEM_ARGS: &str = "'ten_a', sha256('7'::bytea), 'prg_a', now(), NULL, NULL";

#[test]
fn hot_statements_probe_their_unique_index_right_after_a_bulk_insert() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    fresh_bulk(&mut conn);
    let stats: Stats = sql_query("SELECT reltuples FROM pg_class WHERE relname = 'tickets'")
        .get_result(&mut conn)
        .unwrap();
    assert!(
        stats.reltuples < 0.0,
        "tickets must never have been analysed"
    );
    sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();

    let redeem = generic_plan(
        &mut conn,
        "text, bytea, text, timestamptz, text, text",
        REDEEM,
        REDEEM_ARGS,
    );
    assert_probes(&redeem, "tickets", TICKET_PROBE);
    assert_probes(&redeem, "programs", PROGRAM_PROBE);

    // The redeemer's share, claimed before the UPDATE.
    let claim = generic_plan(
        &mut conn,
        "text, bytea, text, bytea",
        "INSERT INTO redeemer_uses AS u (tenant_id, ticket_id, redeemer_key, uses) \
         SELECT t.tenant_id, t.id, $4, 1 FROM tickets t \
         WHERE t.tenant_id = $1 AND t.code_hash = $2 AND t.program_id = $3 \
           AND t.per_redeemer_limit IS NOT NULL \
         ON CONFLICT (tenant_id, ticket_id, redeemer_key) DO UPDATE SET uses = u.uses + 1",
        "'ten_a', sha256('7'::bytea), 'prg_a', sha256('r'::bytea)",
    );
    assert_probes(&claim, "tickets", TICKET_PROBE);

    // The classification of a refusal: the ticket, the program, the wrong email.
    let find_ticket = generic_plan(
        &mut conn,
        "text, bytea, text",
        "SELECT * FROM tickets WHERE tenant_id = $1 AND code_hash = $2 AND program_id = $3",
        "'ten_a', sha256('7'::bytea), 'prg_a'",
    );
    assert_probes(&find_ticket, "tickets", TICKET_PROBE);
    let find_program = generic_plan(
        &mut conn,
        "text, text",
        "SELECT * FROM programs WHERE tenant_id = $1 AND id = $2",
        "'ten_a', 'prg_a'",
    );
    assert_probes(&find_program, "programs", PROGRAM_PROBE);
    let mismatch = generic_plan(
        &mut conn,
        "text, text, timestamptz",
        "UPDATE tickets SET failed_attempts = failed_attempts + 1 \
         WHERE tenant_id = $1 AND id = $2 \
         AND (state = 'active' OR (state = 'locked' AND locked_until <= $3))",
        "'ten_a', 'tkt_7', now()",
    );
    assert_probes(&mismatch, "tickets", &["tickets_pkey"]);

    // The standalone use (function `tessera_use_standalone`).
    let standalone = generic_plan(
        &mut conn,
        "text, bytea, timestamptz",
        "UPDATE standalone_tickets s SET uses_left = s.uses_left - 1 \
         WHERE s.tenant_id = $1 AND s.token_hash = $2 \
           AND (s.expires_at IS NULL OR s.expires_at > $3) \
           AND (s.uses_left IS NULL OR s.uses_left > 0) \
         RETURNING s.uses_left, s.payload",
        "'ten_a', sha256('s7'::bytea), now()",
    );
    assert_probes(
        &standalone,
        "standalone_tickets",
        &["standalone_tickets_token_hash_unique"],
    );

    // The API-key lookup: by the tenant the key names, and its hash.
    let key = generic_plan(
        &mut conn,
        "text, bytea",
        "SELECT * FROM api_keys WHERE tenant_id = $1 AND key_hash = $2",
        "'ten_a', sha256('key'::bytea)",
    );
    assert_probes(&key, "api_keys", &["api_keys_key_hash_unique"]);

    // The directories a tenant-less identifier is routed through.
    let program_route = generic_plan(
        &mut conn,
        "text",
        "SELECT tenant_id FROM program_directory WHERE program_id = $1",
        "'prg_a'",
    );
    assert_probes(
        &program_route,
        "program_directory",
        &["program_directory_pkey"],
    );
    let legacy_key_route = generic_plan(
        &mut conn,
        "bytea",
        "SELECT tenant_id FROM legacy_api_key_directory WHERE key_hash = $1",
        "sha256('key'::bytea)",
    );
    assert_probes(
        &legacy_key_route,
        "legacy_api_key_directory",
        &["legacy_api_key_directory_pkey"],
    );

    // Issuance: the program's counter.
    let issue = generic_plan(
        &mut conn,
        "text, text, timestamptz",
        "UPDATE programs SET issued_tickets = issued_tickets + 1 \
         WHERE tenant_id = $1 AND id = $2 AND state = 'active' AND end_time > $3 \
         AND (max_tickets = 0 OR issued_tickets + 1 <= max_tickets)",
        "'ten_a', 'prg_a', now()",
    );
    assert_probes(&issue, "programs", PROGRAM_PROBE);
}

/// The same plan fails without migration `unique_probes_win_ties`: this is the
/// control that shows the test above can fail. An index on the same columns as
/// tickets_by_program, created after the unique constraint, takes the tie.
#[test]
fn a_newer_index_that_ties_would_take_the_redemption() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    // Created on the empty table, so the bulk insert below stays unanalysed.
    sql_query(
        "CREATE INDEX tickets_by_program_again ON tickets (tenant_id, program_id, created_at, id)",
    )
    .execute(&mut conn)
    .unwrap();
    fresh_bulk(&mut conn);
    sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();
    let redeem = generic_plan(
        &mut conn,
        "text, bytea, text, timestamptz, text, text",
        REDEEM,
        REDEEM_ARGS,
    );
    assert!(
        redeem
            .iter()
            .any(|(_, rel, index)| rel == "tickets" && index == "tickets_by_program_again"),
        "{redeem:?}"
    );
}

/// After a batch the statistics are refreshed (ANALYZE), which also makes every
/// connection re-plan its cached statements.
#[test]
fn analysed_statistics_keep_the_probe() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    fresh_bulk(&mut conn);
    sql_query("ANALYZE tickets").execute(&mut conn).unwrap();
    sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();
    let redeem = generic_plan(
        &mut conn,
        "text, bytea, text, timestamptz, text, text",
        REDEEM,
        REDEEM_ARGS,
    );
    assert_probes(&redeem, "tickets", TICKET_PROBE);
}
