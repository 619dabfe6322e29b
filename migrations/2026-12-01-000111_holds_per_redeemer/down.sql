DROP FUNCTION tessera_hold(text, bytea, text, timestamptz, text, text, text, timestamptz, bytea);
CREATE FUNCTION tessera_hold(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_event_id text,
    p_hold_id text,
    p_expires_at timestamptz
)
RETURNS TABLE (ticket_id text, remaining bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH reserved AS (
        UPDATE tickets t
        SET held = t.held + 1, failed_attempts = 0
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND t.state = 'active'
          AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
        RETURNING t.id AS ticket_id,
            LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
                - t.redemptions - t.held AS remaining
    ), inserted AS (
        INSERT INTO holds (tenant_id, id, program_id, ticket_id, state, expires_at, created_at)
        SELECT p_tenant_id, p_hold_id, p_program_id, r.ticket_id, 'held', p_expires_at, p_now
        FROM reserved r
    ), logged AS (
        INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
        SELECT p_tenant_id, p_event_id, 'ticket.held', p_now, p_program_id, r.ticket_id,
               jsonb_build_object('holdId', p_hold_id, 'expiresAt', p_expires_at, 'remaining', r.remaining)
        FROM reserved r
    )
    SELECT r.ticket_id, r.remaining::bigint FROM reserved r;
END
$$;
