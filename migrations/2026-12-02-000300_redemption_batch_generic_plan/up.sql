-- The redemption batch (migration redemption_set_based), cheaper per batch and per
-- member; the rules, the results and the lock order are those of that migration.
--
-- 1. `plan_cache_mode = force_generic_plan`. PL/pgSQL caches the plan of its
--    statement, but the plan cache compares each call's custom plan (planned for
--    the arrays at hand) with the generic one, and for a small batch the custom
--    plan looks cheaper, so every call planned the statement again: a batch of one
--    took 1.1 ms where its generic plan takes 0.6 ms (pgbench, one client). The
--    generic plan is the one tests/plans.rs explains: a nested loop of probes.
--    The standalone batch (migration standalone_use_set_based) had the same
--    cost: 0.49 ms for a batch of one, 0.18 ms with its generic plan.
-- 2. One row lock per member instead of one per ticket. `locked` was the
--    batch's distinct tickets and `eligible` joined the members to them, a nested
--    loop over two CTE scans: n x n comparisons (992 rows removed by the join
--    filter for 32 members). Now each member, taken in (tenant, hash, arrival)
--    order, locks its ticket in a LATERAL subquery and carries the row it got:
--    the lock order is the same, and a code twice in one batch locks a row this
--    transaction already holds, which returns the same (latest) version at once.
--    32 members: 2.26-2.46 ms -> 2.06-2.21 ms (pgbench, one client, four
--    alternated runs each).
CREATE OR REPLACE FUNCTION tessera_redeem_batch(
    p_tenant_id text[],
    p_code_hash bytea[],
    p_program_id text[],
    p_now timestamptz[],
    p_email text[],
    p_redeemed_event_id text[],
    p_exhausted_event_id text[],
    p_redemption_id text[],
    p_key_tenant text[],
    p_key_id text[]
)
RETURNS TABLE (
    ord bigint,
    ticket_id text,
    payload text,
    object_id text,
    group_addresses text[],
    remaining bigint
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH m AS MATERIALIZED (
        SELECT v.tenant_id, v.code_hash, v.program_id, v.at, v.email,
               v.redeemed_event_id, v.exhausted_event_id, v.redemption_id, v.ord
        FROM unnest(p_tenant_id, p_code_hash, p_program_id, p_now, p_email,
                    p_redeemed_event_id, p_exhausted_event_id, p_redemption_id,
                    p_key_tenant, p_key_id)
             WITH ORDINALITY AS v(tenant_id, code_hash, program_id, at, email,
                                  redeemed_event_id, exhausted_event_id, redemption_id,
                                  key_tenant, key_id, ord)
        WHERE v.key_id IS NULL OR (SELECT true FROM api_keys k
            WHERE k.tenant_id = v.key_tenant AND k.id = v.key_id) IS TRUE
    ), locked AS MATERIALIZED (
        SELECT d.ord, d.tenant_id, d.code_hash, d.program_id, d.at, d.email,
               d.redeemed_event_id, d.exhausted_event_id, d.redemption_id,
               t.id, t.program_id AS ticket_program_id, t.state, t.locked_until,
               t.redemptions, t.held, t.max_redemptions, t.email_normalized, t.payload
        FROM (SELECT * FROM m ORDER BY m.tenant_id, m.code_hash, m.ord) d
        CROSS JOIN LATERAL (
            SELECT x.id, x.program_id, x.state, x.locked_until,
                   x.redemptions, x.held, x.max_redemptions, x.email_normalized, x.payload
            FROM tickets x
            WHERE x.tenant_id = d.tenant_id AND x.code_hash = d.code_hash
              AND x.per_redeemer_limit IS NULL
              AND x.state IN ('active', 'locked')
              AND x.redemptions + x.held < (
                  SELECT LEAST(COALESCE(x.max_redemptions, q.max_redemptions), q.max_redemptions)
                  FROM programs q WHERE q.tenant_id = x.tenant_id AND q.id = x.program_id)
            FOR UPDATE OF x
        ) t
    ), eligible AS MATERIALIZED (
        SELECT l.ord, l.tenant_id, l.code_hash, l.program_id, l.at,
               l.redeemed_event_id, l.exhausted_event_id, l.redemption_id,
               l.id AS ticket_id, l.payload, p.object_id, p.group_addresses,
               LEAST(COALESCE(l.max_redemptions, p.max_redemptions), p.max_redemptions)
                   - l.redemptions - l.held AS left_before,
               row_number() OVER (PARTITION BY l.tenant_id, l.code_hash ORDER BY l.ord) AS n
        FROM locked l
        CROSS JOIN LATERAL (
            SELECT q.object_id, q.group_addresses, q.max_redemptions
            FROM programs q
            WHERE q.tenant_id = l.tenant_id AND q.id = l.program_id
              AND q.state = 'active' AND q.start_time <= l.at AND l.at < q.end_time
        ) p
        WHERE (l.ticket_program_id = l.program_id) IS TRUE
          AND (l.state = 'active' OR (l.state = 'locked' AND l.locked_until <= l.at))
          AND (l.email_normalized IS NULL OR l.email_normalized = l.email)
    ), granted AS MATERIALIZED (
        SELECT e.ord, e.tenant_id, e.code_hash, e.program_id, e.at,
               e.redeemed_event_id, e.exhausted_event_id, e.redemption_id,
               e.ticket_id, e.payload, e.object_id, e.group_addresses,
               e.left_before - e.n AS remaining
        FROM eligible e
        WHERE e.n <= e.left_before
    ), raised AS (
        UPDATE tickets t
        SET redemptions = t.redemptions + s.grants, failed_attempts = 0, email_locks = 0,
            last_redeemed_at = s.last_at
        FROM (SELECT g.tenant_id, g.code_hash, count(*) AS grants, max(g.at) AS last_at
              FROM granted g GROUP BY g.tenant_id, g.code_hash) s
        WHERE t.tenant_id = s.tenant_id AND t.code_hash = s.code_hash
    ), logged AS (
        INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
        SELECT g.tenant_id, g.redeemed_event_id, 'ticket.redeemed', g.at, g.program_id,
               g.ticket_id,
               jsonb_build_object('remaining', g.remaining, 'redemptionId', g.redemption_id)
        FROM granted g
        UNION ALL
        SELECT g.tenant_id, g.exhausted_event_id, 'ticket.exhausted', g.at, g.program_id,
               g.ticket_id, '{}'::jsonb
        FROM granted g WHERE g.remaining = 0
    ), recorded AS (
        INSERT INTO redemptions (tenant_id, id, program_id, ticket_id, created_at, redeemer_key)
        SELECT g.tenant_id, g.redemption_id, g.program_id, g.ticket_id, g.at, NULL::bytea
        FROM granted g
    )
    SELECT g.ord, g.ticket_id, g.payload, g.object_id, g.group_addresses,
           g.remaining::bigint
    FROM granted g;

    -- Nothing granted: the statement wrote row locks and nothing else, and losing
    -- those in a crash loses nothing. Its commit then does not wait for the WAL
    -- flush, so a known code refused here takes an unknown code's time (which
    -- locks nothing, so has nothing to flush) instead of a flush more.
    IF NOT FOUND THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
END
$$;

ALTER FUNCTION tessera_use_standalone_batch(text[], bytea[], timestamptz[], text[])
    SET plan_cache_mode = force_generic_plan;
