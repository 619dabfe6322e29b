-- The group commit's standalone uses as one set-based statement (issue 12: the
-- standalone use at 1.2x Authen's statement). Before, the batch called
-- `tessera_use_standalone_member` once per member: a PL/pgSQL call whose UPDATE
-- set up an executor of its own (and parsed the table's CHECK constraints again)
-- for every member, half of PostgreSQL's time in the batch. Here the whole batch
-- is one statement, run once per batch:
--
-- 1. `m`: the members, each kept only if the API key it was vouched for by from
--    memory exists (a scalar subquery: a probe of api_keys' primary key).
-- 2. `locked`: one row lock per ticket, taken in (tenant, hash) order (the LATERAL
--    subquery keeps the join a nested loop over the sorted keys, so two batches
--    never lock in opposite orders). Under READ COMMITTED, FOR UPDATE waits for a
--    concurrent use and returns the ticket as that use left it: the uses left
--    that the batch judges are the latest, never the statement's snapshot's.
-- 3. `granted`: the members of each ticket in their order, each unexpired one
--    ranked n = 1, 2, ...; the first `uses_left` of them are granted and the n-th
--    is told `uses_left - n` (NULL - n stays NULL: unlimited). The same ticket
--    twice in one batch is used at most as often as it has uses left, exactly as
--    two statements in a row would use it.
-- 4. A limited ticket is lowered by its grants, or deleted when they used it up,
--    and the tenants' live-ticket counters lowered once per tenant after every
--    ticket row is locked (counters are always locked last). An unlimited
--    ticket keeps its row as it is: its use changes nothing but the lock.
--
-- The SET clauses make the plan a nested loop of index probes whatever the
-- statistics say (`tests/plans.rs` explains this very statement): the batch is a
-- few rows joined to a table that may hold millions, and a hash join would read
-- all of it.
CREATE FUNCTION tessera_use_standalone_batch(
    p_tenant_id text[],
    p_token_hash bytea[],
    p_now timestamptz[],
    p_key_id text[]
)
RETURNS TABLE (ord bigint, uses_left bigint, payload text)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH m AS MATERIALIZED (
        SELECT v.tenant_id, v.token_hash, v.at, v.ord
        FROM unnest(p_tenant_id, p_token_hash, p_now, p_key_id)
             WITH ORDINALITY AS v(tenant_id, token_hash, at, key_id, ord)
        WHERE v.key_id IS NULL OR (SELECT true FROM api_keys k
            WHERE k.tenant_id = v.tenant_id AND k.id = v.key_id) IS TRUE
    ), locked AS MATERIALIZED (
        SELECT t.tenant_id, t.token_hash, t.uses_left, t.expires_at, t.payload
        FROM (SELECT DISTINCT d.tenant_id, d.token_hash FROM m d
              ORDER BY d.tenant_id, d.token_hash) d
        CROSS JOIN LATERAL (
            SELECT s.tenant_id, s.token_hash, s.uses_left, s.expires_at, s.payload
            FROM standalone_tickets s
            WHERE s.tenant_id = d.tenant_id AND s.token_hash = d.token_hash
              AND (s.uses_left IS NULL OR s.uses_left > 0)
            FOR UPDATE
        ) t
    ), granted AS MATERIALIZED (
        SELECT r.ord, r.tenant_id, r.token_hash, r.uses_left, r.payload, r.n
        FROM (SELECT m.ord, l.tenant_id, l.token_hash, l.uses_left, l.payload,
                     row_number() OVER (PARTITION BY l.tenant_id, l.token_hash
                                        ORDER BY m.ord) AS n
              FROM m JOIN locked l
                ON l.tenant_id = m.tenant_id AND l.token_hash = m.token_hash
              WHERE l.expires_at IS NULL OR l.expires_at > m.at) r
        WHERE r.uses_left IS NULL OR r.n <= r.uses_left
    ), spent AS MATERIALIZED (
        SELECT g.tenant_id, g.token_hash, min(g.uses_left) - count(*) AS left_after
        FROM granted g
        WHERE g.uses_left IS NOT NULL
        GROUP BY g.tenant_id, g.token_hash
    ), lowered AS (
        UPDATE standalone_tickets s SET uses_left = p.left_after
        FROM spent p
        WHERE s.tenant_id = p.tenant_id AND s.token_hash = p.token_hash
          AND p.left_after > 0
    ), removed AS (
        DELETE FROM standalone_tickets s
        USING spent p
        WHERE s.tenant_id = p.tenant_id AND s.token_hash = p.token_hash
          AND p.left_after = 0
        RETURNING s.tenant_id
    ), counted AS (
        UPDATE tenant_counters c SET live_standalone = c.live_standalone - r.removed
        FROM (SELECT x.tenant_id, count(*) AS removed FROM removed x
              GROUP BY x.tenant_id) r
        WHERE c.tenant_id = r.tenant_id
    )
    SELECT g.ord, g.uses_left - g.n, g.payload FROM granted g;
END
$$;

-- One copy of the rules: the one-statement use (group commit off) is a batch of
-- one, and the per-member function of the former batch is gone.
CREATE OR REPLACE FUNCTION tessera_use_standalone(
    p_tenant_id text,
    p_token_hash bytea,
    p_now timestamptz
)
RETURNS TABLE (uses_left bigint, payload text)
LANGUAGE sql
AS $$
    SELECT b.uses_left, b.payload
    FROM tessera_use_standalone_batch(ARRAY[p_tenant_id], ARRAY[p_token_hash],
                                      ARRAY[p_now], ARRAY[NULL::text]) b
$$;

DROP FUNCTION tessera_use_standalone_member(text, bytea, timestamptz);

-- The key check (here and in the redemption batch) probes api_keys by (tenant,
-- id). Once the statistics say a tenant has one key, that probe's cost ties with
-- a walk of the tenant's keys in api_keys_key_hash_unique, and on a tie the newer
-- index wins (migration unique_probes_win_ties). The primary key cannot be
-- rebuilt newer (nothing hangs on it, but it is the primary key), so a unique
-- index on the same columns, newer than every other, takes the probe.
CREATE UNIQUE INDEX api_keys_probe ON api_keys (tenant_id, id);
