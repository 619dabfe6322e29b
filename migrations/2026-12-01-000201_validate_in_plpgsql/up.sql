-- tessera_validate (as of migration email_lock_expiry) becomes PL/pgSQL, its
-- statement unchanged: Citus cannot plan a parameterized LANGUAGE sql function
-- that reads distributed tables ("parameterized queries for SQL functions
-- referencing distributed tables are not supported"), while each statement of a
-- PL/pgSQL function is planned on its own, as a single-tenant (router) query.
CREATE OR REPLACE FUNCTION tessera_validate(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text
)
RETURNS TABLE (ticket_id text, object_id text, group_addresses text[], remaining bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.id, p.object_id, p.group_addresses,
            (LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
                - t.redemptions - t.held)::bigint
        FROM tickets t JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))
          AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email);
END
$$;
