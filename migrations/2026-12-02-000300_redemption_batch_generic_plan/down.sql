ALTER FUNCTION tessera_use_standalone_batch(text[], bytea[], timestamptz[], text[])
    RESET plan_cache_mode;
-- The function of migration redemption_set_based (CREATE OR REPLACE gives it the
-- SET clauses of this definition only, so plan_cache_mode goes with the body).
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
        SELECT t.tenant_id, t.code_hash, t.id, t.program_id, t.state, t.locked_until,
               t.redemptions, t.held, t.max_redemptions, t.email_normalized, t.payload
        FROM (SELECT DISTINCT d.tenant_id, d.code_hash FROM m d
              ORDER BY d.tenant_id, d.code_hash) d
        CROSS JOIN LATERAL (
            SELECT x.tenant_id, x.code_hash, x.id, x.program_id, x.state, x.locked_until,
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
        SELECT m.ord, m.tenant_id, m.code_hash, m.program_id, m.at,
               m.redeemed_event_id, m.exhausted_event_id, m.redemption_id,
               l.id AS ticket_id, l.payload, p.object_id, p.group_addresses,
               LEAST(COALESCE(l.max_redemptions, p.max_redemptions), p.max_redemptions)
                   - l.redemptions - l.held AS left_before,
               row_number() OVER (PARTITION BY l.tenant_id, l.code_hash ORDER BY m.ord) AS n
        FROM m
        JOIN locked l ON l.tenant_id = m.tenant_id AND l.code_hash = m.code_hash
        CROSS JOIN LATERAL (
            SELECT q.object_id, q.group_addresses, q.max_redemptions
            FROM programs q
            WHERE q.tenant_id = m.tenant_id AND q.id = m.program_id
              AND q.state = 'active' AND q.start_time <= m.at AND m.at < q.end_time
        ) p
        WHERE (l.program_id = m.program_id) IS TRUE
          AND (l.state = 'active' OR (l.state = 'locked' AND l.locked_until <= m.at))
          AND (l.email_normalized IS NULL OR l.email_normalized = m.email)
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
