//! Plans that cannot go wrong (issue 12): right after a bulk insert, with no
//! ANALYZE and with the generic plan PL/pgSQL and prepared statements keep for a
//! connection's life, every hot statement probes its unique index.
//!
//! EXPLAIN cannot look inside a function, so each statement of `tessera_redeem`
//! (and its classification, the standalone use, the API-key lookup, issuance) is
//! run here in the same shape, as a prepared statement forced to its generic plan;
//! `the_functions_have_the_shapes_explained_here` ties the shapes to the
//! functions. A second state: a program issued after the statistics were taken,
//! whose id they have never seen, under custom plans (PL/pgSQL's first five
//! executions per connection, and every unprepared statement).
#![allow(clippy::unwrap_used)]

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{sql_query, Connection, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::Value;
use tessera_postgres::testing::TestDatabase;
use tessera_postgres::EXECUTOR_PLANNER_SETTINGS;

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

/// The scans of `statement`'s plan, prepared with `types` and executed with
/// `args`: its generic plan under `plan_cache_mode = force_generic_plan`, the plan
/// for those values under `force_custom_plan`.
fn prepared_plan(
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
const KEY_PROBE: &[&str] = &["api_keys_probe", "api_keys_pkey"];

/// The conditional UPDATE of `tessera_redeem` (migration `program_id_as_filter`),
/// its parameters as placeholders; `tessera_hold`'s and `tessera_validate`'s have
/// the same WHERE.
const REDEEM: &str = "UPDATE tickets t \
    SET redemptions = t.redemptions + 1, failed_attempts = 0, email_locks = 0, last_redeemed_at = $4 \
    FROM programs p \
    WHERE t.tenant_id = $1 AND t.code_hash = $2 AND (t.program_id = $3) IS TRUE \
      AND p.tenant_id = $1 AND p.id = $3 \
      AND p.state = 'active' AND p.start_time <= $4 AND $4 < p.end_time \
      AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= $4)) \
      AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions) \
      AND (t.email_normalized IS NULL OR t.email_normalized = $5) \
      AND (t.per_redeemer_limit IS NULL OR t.id = $6) \
    RETURNING t.id, t.payload, p.object_id, p.group_addresses";
const REDEEM_ARGS: &str = "'ten_a', sha256('7'::bytea), 'prg_a', now(), NULL, NULL";

/// The read of the ticket's per-redeemer limit before the claim, in both functions.
const CLAIM: &str = "SELECT t.id, t.per_redeemer_limit FROM tickets t \
    WHERE t.tenant_id = $1 AND t.code_hash = $2 AND (t.program_id = $3) IS TRUE \
      AND t.per_redeemer_limit IS NOT NULL";
const CLAIM_ARGS: &str = "'ten_a', sha256('7'::bytea), 'prg_a'";

/// The refusal's read of the ticket (in `tessera_refuse`): by its unique
/// (tenant, code hash) alone, the program a filter.
const FIND_TICKET: &str = "SELECT * FROM tickets t \
    WHERE t.tenant_id = $1 AND t.code_hash = $2 AND (t.program_id = $3) IS TRUE";
const FIND_TICKET_ARGS: &str = "'ten_a', sha256('7'::bytea), 'prg_a'";

/// The group commit's check of a key taken from memory (`statements.rs`).
const CALLER_KEY: &str =
    "SELECT u.ord FROM unnest($1, $2) WITH ORDINALITY AS u(key_tenant, key_id, ord) \
    WHERE u.key_id IS NULL OR (SELECT true FROM api_keys k \
        WHERE k.tenant_id = u.key_tenant AND k.id = u.key_id) IS TRUE";
const CALLER_KEY_ARGS: &str = "ARRAY['ten_a'], ARRAY['key_a']";

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

    let redeem = prepared_plan(
        &mut conn,
        "text, bytea, text, timestamptz, text, text",
        REDEEM,
        REDEEM_ARGS,
    );
    assert_probes(&redeem, "tickets", TICKET_PROBE);
    assert_probes(&redeem, "programs", PROGRAM_PROBE);

    // The redeemer's share: the ticket's limit, read before the claim.
    let claim = prepared_plan(&mut conn, "text, bytea, text", CLAIM, CLAIM_ARGS);
    assert_probes(&claim, "tickets", TICKET_PROBE);

    // The refusal (`tessera_refuse`): the ticket, the program, the wrong email,
    // the redeemer's uses (the throttle count is an upsert on its primary key).
    let find_ticket = prepared_plan(
        &mut conn,
        "text, bytea, text",
        FIND_TICKET,
        FIND_TICKET_ARGS,
    );
    assert_probes(&find_ticket, "tickets", TICKET_PROBE);
    let find_program = prepared_plan(
        &mut conn,
        "text, text",
        "SELECT * FROM programs WHERE tenant_id = $1 AND id = $2",
        "'ten_a', 'prg_a'",
    );
    assert_probes(&find_program, "programs", PROGRAM_PROBE);
    let mismatch = prepared_plan(
        &mut conn,
        "text, text, timestamptz",
        "UPDATE tickets SET failed_attempts = failed_attempts + 1 \
         WHERE tenant_id = $1 AND id = $2 \
         AND (state = 'active' OR (state = 'locked' AND locked_until <= $3))",
        "'ten_a', 'tkt_7', now()",
    );
    assert_probes(&mismatch, "tickets", &["tickets_pkey"]);
    let redeemer_uses = prepared_plan(
        &mut conn,
        "text, text, bytea",
        "SELECT u.uses FROM redeemer_uses u \
         WHERE u.tenant_id = $1 AND u.ticket_id = $2 AND u.redeemer_key = $3",
        "'ten_a', 'tkt_7', sha256('r'::bytea)",
    );
    assert_probes(&redeemer_uses, "redeemer_uses", &["redeemer_uses_pkey"]);

    // The standalone use (function `tessera_use_standalone`).
    let standalone = prepared_plan(
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
    let key = prepared_plan(
        &mut conn,
        "text, bytea",
        "SELECT * FROM api_keys WHERE tenant_id = $1 AND key_hash = $2",
        "'ten_a', sha256('key'::bytea)",
    );
    assert_probes(&key, "api_keys", &["api_keys_key_hash_unique"]);
    // The group commit's check of a key taken from memory (`statements.rs`): by
    // the key's tenant and id, its primary key. (Written as `EXISTS`, the planner
    // turned it into a hashed subplan that reads all of api_keys per batch.)
    let caller_key = prepared_plan(&mut conn, "text[], text[]", CALLER_KEY, CALLER_KEY_ARGS);
    assert_probes(&caller_key, "api_keys", KEY_PROBE);

    // The directories a tenant-less identifier is routed through.
    let program_route = prepared_plan(
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
    let legacy_key_route = prepared_plan(
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
    let issue = prepared_plan(
        &mut conn,
        "text, text, timestamptz",
        "UPDATE programs SET issued_tickets = issued_tickets + 1 \
         WHERE tenant_id = $1 AND id = $2 AND state = 'active' AND end_time > $3 \
         AND (max_tickets = 0 OR issued_tickets + 1 <= max_tickets)",
        "'ten_a', 'prg_a', now()",
    );
    assert_probes(&issue, "programs", PROGRAM_PROBE);
}

/// A newer index on the program's columns cannot take the probe either (before
/// migration `program_id_as_filter` it tied with it and, being newer, won: the
/// reason for migration `unique_probes_win_ties`); the former shape, the control
/// that shows this test can fail, still takes it.
#[test]
fn a_newer_index_on_the_programs_columns_cannot_take_the_redemption() {
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
    let types = "text, bytea, text, timestamptz, text, text";
    let redeem = prepared_plan(&mut conn, types, REDEEM, REDEEM_ARGS);
    assert_probes(&redeem, "tickets", TICKET_PROBE);
    let former = prepared_plan(&mut conn, types, &former_redeem(), REDEEM_ARGS);
    assert!(
        former
            .iter()
            .any(|(_, rel, index)| rel == "tickets" && index == "tickets_by_program_again"),
        "{former:?}"
    );
}

/// `REDEEM` as it was before migration `program_id_as_filter`: program_id an index
/// condition, and the program joined on the ticket's column.
fn former_redeem() -> String {
    let former = REDEEM
        .replace("(t.program_id = $3) IS TRUE", "t.program_id = $3")
        .replace(
            "p.tenant_id = $1 AND p.id = $3",
            "p.tenant_id = t.tenant_id AND p.id = t.program_id",
        );
    assert_ne!(former, REDEEM);
    former
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
    let redeem = prepared_plan(
        &mut conn,
        "text, bytea, text, timestamptz, text, text",
        REDEEM,
        REDEEM_ARGS,
    );
    assert_probes(&redeem, "tickets", TICKET_PROBE);
    // One key analysed: a seq scan of its one page is the cheapest plan, and an
    // executor would keep it however large the table grows; under the executors'
    // settings the probe stays, and api_keys_probe, the newest index, wins its tie
    // with a walk of the tenant's keys.
    sql_query("ANALYZE api_keys").execute(&mut conn).unwrap();
    let unset = prepared_plan(&mut conn, "text[], text[]", CALLER_KEY, CALLER_KEY_ARGS);
    assert!(
        unset.iter().any(|(kind, _, _)| kind == "Seq Scan"),
        "the control: {unset:?}"
    );
    conn.batch_execute(EXECUTOR_PLANNER_SETTINGS).unwrap();
    let caller_key = prepared_plan(&mut conn, "text[], text[]", CALLER_KEY, CALLER_KEY_ARGS);
    assert_probes(&caller_key, "api_keys", &["api_keys_probe"]);
}

/// One big program (and a thousand small ones) analysed, then a further
/// program's 2,000 tickets inserted: fewer than the 10 % that make issuance
/// refresh the statistics, so they have never seen `prg_b`.
fn new_program_after_analyse(conn: &mut PgConnection) {
    fresh_bulk(conn);
    for statement in [
        "INSERT INTO programs (tenant_id, id, object_id, ntp_class, max_tickets, max_redemptions, \
         start_time, end_time, ticket_length, alphabet, one_active_per_subject, state, version, \
         created_at, updated_at) SELECT 'ten_a', 'prg_old' || g, 'iq__o', 1, 0, 1, \
         now() - interval '1 day', now() + interval '1 day', 8, 'numeric', false, 'active', 1, \
         now(), now() FROM generate_series(1, 1000) g",
        "ANALYZE tickets, programs",
    ] {
        sql_query(statement).execute(conn).unwrap();
    }
    for statement in [
        "INSERT INTO programs (tenant_id, id, object_id, ntp_class, max_tickets, max_redemptions, \
         start_time, end_time, ticket_length, alphabet, one_active_per_subject, state, version, \
         created_at, updated_at) VALUES ('ten_a', 'prg_b', 'iq__o', 1, 0, 1, now() - interval '1 day', \
         now() + interval '1 day', 8, 'numeric', false, 'active', 1, now(), now())",
        "INSERT INTO tickets (tenant_id, id, program_id, code_hash, state, created_at, version) \
         SELECT 'ten_a', 'tkt_b' || g, 'prg_b', sha256(('b' || g)::bytea), 'active', now(), 1 \
         FROM generate_series(1, 2000) g",
        "SET plan_cache_mode = force_custom_plan",
    ] {
        sql_query(statement).execute(conn).unwrap();
    }
}

const NEW_PROGRAM_REDEEM_ARGS: &str = "'ten_a', sha256('b7'::bytea), 'prg_b', now(), NULL, NULL";

/// Found by issue 16's timing: with custom plans the planner estimated one row
/// for the unseen program on tickets_by_program and walked its 2,000 tickets for
/// every refused attempt (1.9 ms, against 0.02 ms for the probe).
#[test]
fn a_program_the_statistics_never_saw_is_still_probed() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    new_program_after_analyse(&mut conn);
    let types = "text, bytea, text, timestamptz, text, text";
    let redeem = prepared_plan(&mut conn, types, REDEEM, NEW_PROGRAM_REDEEM_ARGS);
    assert_probes(&redeem, "tickets", TICKET_PROBE);
    assert_probes(&redeem, "programs", PROGRAM_PROBE);
    let args = "'ten_a', sha256('b7'::bytea), 'prg_b'";
    let claim = prepared_plan(&mut conn, "text, bytea, text", CLAIM, args);
    assert_probes(&claim, "tickets", TICKET_PROBE);
    let find_ticket = prepared_plan(&mut conn, "text, bytea, text", FIND_TICKET, args);
    assert_probes(&find_ticket, "tickets", TICKET_PROBE);
}

/// The control: the shape before migration `program_id_as_filter` (program_id an
/// index condition, and the program joined on it) walks the unseen program.
#[test]
fn the_former_shape_walks_a_program_the_statistics_never_saw() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    new_program_after_analyse(&mut conn);
    let types = "text, bytea, text, timestamptz, text, text";
    let redeem = prepared_plan(&mut conn, types, &former_redeem(), NEW_PROGRAM_REDEEM_ARGS);
    assert!(
        redeem
            .iter()
            .any(|(_, rel, index)| rel == "tickets" && index == "tickets_by_program"),
        "{redeem:?}"
    );
}

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The statements explained above are the functions' own: each ticket probe of
/// the three functions filters on the program without an index condition, and
/// no function joins the program on the ticket's column.
#[test]
fn the_functions_have_the_shapes_explained_here() {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    for (function, probes) in [
        ("tessera_redeem", 2),
        ("tessera_hold", 2),
        ("tessera_validate", 1),
        ("tessera_refuse", 1),
    ] {
        let found: Definition = sql_query(format!(
            "SELECT pg_get_functiondef(p.oid) AS definition FROM pg_proc p WHERE proname = '{function}'"
        ))
        .get_result(&mut conn)
        .unwrap();
        let body = found.definition;
        let probe = "WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash \
                     AND (t.program_id = p_program_id) IS TRUE";
        assert_eq!(body.matches(probe).count(), probes, "{function}: {body}");
        assert!(
            !body.contains("AND t.program_id = p_program_id"),
            "{function}: {body}"
        );
        assert!(!body.contains("p.id = t.program_id"), "{function}: {body}");
    }
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    setting: String,
}

/// A group-commit batch function: its name, its parameters in order (with their
/// types), and arguments for one member.
struct BatchFunction {
    name: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    args: &'static str,
}

const STANDALONE_BATCH: BatchFunction = BatchFunction {
    name: "tessera_use_standalone_batch",
    parameters: &[
        ("p_tenant_id", "text[]"),
        ("p_token_hash", "bytea[]"),
        ("p_now", "timestamptz[]"),
        ("p_key_id", "text[]"),
    ],
    args: "ARRAY['ten_a'], ARRAY[sha256('s7'::bytea)], ARRAY[now()], ARRAY['key_a']",
};

const REDEEM_BATCH: BatchFunction = BatchFunction {
    name: "tessera_redeem_batch",
    parameters: &[
        ("p_tenant_id", "text[]"),
        ("p_code_hash", "bytea[]"),
        ("p_program_id", "text[]"),
        ("p_now", "timestamptz[]"),
        ("p_email", "text[]"),
        ("p_redeemed_event_id", "text[]"),
        ("p_exhausted_event_id", "text[]"),
        ("p_redemption_id", "text[]"),
        ("p_key_tenant", "text[]"),
        ("p_key_id", "text[]"),
    ],
    args: "ARRAY['ten_a'], ARRAY[sha256('7'::bytea)], ARRAY['prg_a'], ARRAY[now()], \
           ARRAY[NULL::text], ARRAY['evt_1'], ARRAY['evt_2'], ARRAY['rdm_1'], \
           ARRAY['ten_a'], ARRAY['key_a']",
};

impl BatchFunction {
    /// The function's own statement, its arguments as placeholders.
    fn statement(&self, conn: &mut PgConnection) -> String {
        let found: Definition = sql_query(format!(
            "SELECT pg_get_functiondef('{}'::regproc) AS definition",
            self.name
        ))
        .get_result(conn)
        .unwrap();
        let body = found.definition;
        let start = body.find("RETURN QUERY").unwrap() + "RETURN QUERY".len();
        // The query ends at its first semicolon (it holds no other).
        let end = start + body[start..].find(';').unwrap();
        self.parameters.iter().enumerate().fold(
            body[start..end].to_owned(),
            |statement, (index, (name, _))| statement.replace(name, &format!("${}", index + 1)),
        )
    }

    /// The planner settings the function carries (its `SET` clauses).
    fn settings(&self, conn: &mut PgConnection) -> Vec<String> {
        sql_query(format!(
            "SELECT unnest(proconfig) AS setting FROM pg_proc WHERE proname = '{}'",
            self.name
        ))
        .load::<Setting>(conn)
        .unwrap()
        .into_iter()
        .map(|found| found.setting)
        .collect()
    }

    /// The scans of the statement's generic plan under `settings`.
    fn plan(&self, conn: &mut PgConnection, settings: &[String]) -> Vec<(String, String, String)> {
        let statement = self.statement(conn);
        for setting in settings {
            sql_query(format!("SET {setting}")).execute(conn).unwrap();
        }
        let types: Vec<&str> = self.parameters.iter().map(|(_, kind)| *kind).collect();
        let plan = prepared_plan(conn, &types.join(", "), &statement, self.args);
        sql_query("RESET ALL").execute(conn).unwrap();
        plan
    }
}

/// Asserts `probes` of `function`'s plan, right after the bulk insert and with
/// the small tables analysed as small, under the function's own settings; then
/// that without them the analysed plan reads a table whole (the control: the
/// assertion can fail).
fn assert_batch_probes(function: &BatchFunction, probes: impl Fn(&[(String, String, String)])) {
    let db = TestDatabase::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    fresh_bulk(&mut conn);
    sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();
    let settings = function.settings(&mut conn);
    assert!(
        !settings.is_empty(),
        "{} carries its planner settings",
        function.name
    );
    for state in ["fresh", "analysed"] {
        if state == "analysed" {
            sql_query("ANALYZE").execute(&mut conn).unwrap();
        }
        probes(&function.plan(&mut conn, &settings));
    }
    let unset = function.plan(&mut conn, &[]);
    assert!(
        unset.iter().any(|(kind, _, _)| kind == "Seq Scan"),
        "without the settings the small tables are read whole: {unset:?}"
    );
}

/// The standalone batch is a nested loop of probes whatever the statistics: the
/// planner settings the function carries make it so. Without them, once the
/// statistics say api_keys and tenant_counters are small, the same statement
/// reads them whole (the control: the assertion can fail).
#[test]
fn the_standalone_batch_probes_every_table_it_reads() {
    assert_batch_probes(&STANDALONE_BATCH, |plan| {
        assert_probes(
            plan,
            "standalone_tickets",
            &["standalone_tickets_token_hash_unique"],
        );
        assert_probes(plan, "api_keys", KEY_PROBE);
        assert_probes(plan, "tenant_counters", &["tenant_counters_pkey"]);
    });
}

/// The redemption batch likewise: the tickets by their unique (tenant, code
/// hash) and the programs by their key, never the ticket's program column.
#[test]
fn the_redemption_batch_probes_every_table_it_reads() {
    assert_batch_probes(&REDEEM_BATCH, |plan| {
        assert_probes(plan, "tickets", TICKET_PROBE);
        assert_probes(plan, "programs", PROGRAM_PROBE);
        assert_probes(plan, "api_keys", KEY_PROBE);
    });
}
