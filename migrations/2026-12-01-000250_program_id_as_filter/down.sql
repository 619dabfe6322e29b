-- Back to tessera_redeem and tessera_hold of migration citus_plannable_sql and
-- tessera_validate of validate_in_plpgsql (program_id as an index condition).
CREATE OR REPLACE FUNCTION tessera_redeem(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_redeemed_event_id text,
    p_exhausted_event_id text,
    p_redemption_id text,
    p_redeemer_key bytea
)
RETURNS TABLE (
    ticket_id text,
    payload text,
    object_id text,
    group_addresses text[],
    remaining bigint
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_ticket text;
    v_limit bigint;
    v_claimed text;
    v_rows bigint;
BEGIN
    IF p_redeemer_key IS NOT NULL THEN
        -- The limit is read first and bound into the upsert: a subquery in
        -- ON CONFLICT ... WHERE is sent to the shard unrewritten on Citus. The
        -- conditional upsert still decides the count atomically (the conflicting
        -- row is locked and re-checked); a ticket's limit never changes once issued.
        SELECT t.id, t.per_redeemer_limit INTO v_ticket, v_limit
        FROM tickets t
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND t.per_redeemer_limit IS NOT NULL;
        IF v_ticket IS NOT NULL THEN
            INSERT INTO redeemer_uses AS u (tenant_id, ticket_id, redeemer_key, uses)
            VALUES (p_tenant_id, v_ticket, p_redeemer_key, 1)
            ON CONFLICT (tenant_id, ticket_id, redeemer_key) DO UPDATE SET uses = u.uses + 1
            WHERE u.uses < v_limit
            RETURNING u.ticket_id INTO v_claimed;
        END IF;
    END IF;

    RETURN QUERY
    WITH redeemed AS (
        UPDATE tickets t
        SET redemptions = t.redemptions + 1, failed_attempts = 0, email_locks = 0, last_redeemed_at = p_now
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))
          AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
          AND (t.per_redeemer_limit IS NULL OR t.id = v_claimed)
        RETURNING t.id AS ticket_id, t.payload, p.object_id, p.group_addresses,
            LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
                - t.redemptions - t.held AS remaining
    ), logged AS (
        INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
        SELECT p_tenant_id, p_redeemed_event_id, 'ticket.redeemed', p_now, p_program_id, r.ticket_id,
               jsonb_build_object('remaining', r.remaining, 'redemptionId', p_redemption_id)
        FROM redeemed r
        UNION ALL
        SELECT p_tenant_id, p_exhausted_event_id, 'ticket.exhausted', p_now, p_program_id, r.ticket_id,
               '{}'::jsonb
        FROM redeemed r WHERE r.remaining = 0
    ), recorded AS (
        INSERT INTO redemptions (tenant_id, id, program_id, ticket_id, created_at, redeemer_key)
        SELECT p_tenant_id, p_redemption_id, p_program_id, r.ticket_id, p_now,
               CASE WHEN v_claimed IS NOT NULL THEN p_redeemer_key END
        FROM redeemed r
    )
    SELECT r.ticket_id, r.payload, r.object_id, r.group_addresses, r.remaining::bigint FROM redeemed r;

    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_claimed IS NOT NULL AND v_rows = 0 THEN
        UPDATE redeemer_uses SET uses = uses - 1
        WHERE tenant_id = p_tenant_id AND ticket_id = v_claimed AND redeemer_key = p_redeemer_key;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tessera_hold(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_event_id text,
    p_hold_id text,
    p_expires_at timestamptz,
    p_redeemer_key bytea
)
RETURNS TABLE (ticket_id text, remaining bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_ticket text;
    v_limit bigint;
    v_claimed text;
    v_rows bigint;
BEGIN
    -- The redeemer's share, claimed as tessera_redeem claims it (migration
    -- codes_people_bring) and given back if the hold is refused.
    IF p_redeemer_key IS NOT NULL THEN
        -- The limit is read first and bound into the upsert: a subquery in
        -- ON CONFLICT ... WHERE is sent to the shard unrewritten on Citus. The
        -- conditional upsert still decides the count atomically (the conflicting
        -- row is locked and re-checked); a ticket's limit never changes once issued.
        SELECT t.id, t.per_redeemer_limit INTO v_ticket, v_limit
        FROM tickets t
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND t.per_redeemer_limit IS NOT NULL;
        IF v_ticket IS NOT NULL THEN
            INSERT INTO redeemer_uses AS u (tenant_id, ticket_id, redeemer_key, uses)
            VALUES (p_tenant_id, v_ticket, p_redeemer_key, 1)
            ON CONFLICT (tenant_id, ticket_id, redeemer_key) DO UPDATE SET uses = u.uses + 1
            WHERE u.uses < v_limit
            RETURNING u.ticket_id INTO v_claimed;
        END IF;
    END IF;

    RETURN QUERY
    WITH reserved AS (
        UPDATE tickets t
        SET held = t.held + 1, failed_attempts = 0
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))
          AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
          AND (t.per_redeemer_limit IS NULL OR t.id = v_claimed)
        RETURNING t.id AS ticket_id,
            LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
                - t.redemptions - t.held AS remaining
    ), inserted AS (
        INSERT INTO holds (tenant_id, id, program_id, ticket_id, state, expires_at, created_at, redeemer_key)
        SELECT p_tenant_id, p_hold_id, p_program_id, r.ticket_id, 'held', p_expires_at, p_now,
               CASE WHEN v_claimed IS NOT NULL THEN p_redeemer_key END
        FROM reserved r
    ), logged AS (
        INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
        SELECT p_tenant_id, p_event_id, 'ticket.held', p_now, p_program_id, r.ticket_id,
               jsonb_build_object('holdId', p_hold_id, 'expiresAt', p_expires_at, 'remaining', r.remaining)
        FROM reserved r
    )
    SELECT r.ticket_id, r.remaining::bigint FROM reserved r;

    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_claimed IS NOT NULL AND v_rows = 0 THEN
        UPDATE redeemer_uses SET uses = uses - 1
        WHERE tenant_id = p_tenant_id AND ticket_id = v_claimed AND redeemer_key = p_redeemer_key;
    END IF;
END
$$;

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
