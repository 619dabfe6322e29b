-- Codes people bring (issue 11): code patterns and check characters on programs,
-- per-redeemer limits on tickets, and the redemption function that enforces them.

ALTER TABLE programs
    ADD COLUMN code_pattern text CHECK (char_length(code_pattern) <= 64),
    ADD COLUMN check_digit  boolean NOT NULL DEFAULT false;

-- NULL: no per-redeemer share (the redemption statement then writes nothing more).
ALTER TABLE tickets
    ADD COLUMN per_redeemer_limit bigint CHECK (per_redeemer_limit >= 1);

-- Uses of a ticket by one redeemer. redeemer_key is the keyed hash
-- (HMAC-SHA-256, key derived from the master key) of the redeemerId: the id is
-- not a secret but may be personal data (an email, a customer number), and the
-- rule needs only equality, so a dump of the database does not say who redeemed.
CREATE TABLE redeemer_uses (
    tenant_id    text   NOT NULL,
    ticket_id    text   NOT NULL,
    redeemer_key bytea  NOT NULL CHECK (octet_length(redeemer_key) = 32),
    uses         bigint NOT NULL CHECK (uses >= 0),
    PRIMARY KEY (tenant_id, ticket_id, redeemer_key),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);

DROP FUNCTION tessera_redeem(text, bytea, text, timestamptz, text, text, text, text);

-- As in 2026-12-01-000100_redemption_lifecycle (live holds count as used, the
-- redemption row), plus p_redeemer_key. For a ticket with per_redeemer_limit, the
-- redeemer's use is claimed first by a conditional upsert (atomic on the
-- redeemer_uses row), and the ticket's UPDATE then requires that claim; a claim
-- whose ticket UPDATE matched nothing is given back before the function returns,
-- in the same transaction, so a redeemer's count moves iff the ticket's does.
-- Without p_redeemer_key (or for tickets without the limit) the upsert selects no
-- row and writes nothing: the hot path gains no write.
CREATE FUNCTION tessera_redeem(
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
    v_claimed text;
    v_rows bigint;
BEGIN
    IF p_redeemer_key IS NOT NULL THEN
        INSERT INTO redeemer_uses AS u (tenant_id, ticket_id, redeemer_key, uses)
        SELECT t.tenant_id, t.id, p_redeemer_key, 1
        FROM tickets t
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND t.per_redeemer_limit IS NOT NULL
        ON CONFLICT (tenant_id, ticket_id, redeemer_key) DO UPDATE SET uses = u.uses + 1
        WHERE u.uses < (SELECT t2.per_redeemer_limit FROM tickets t2
                        WHERE t2.tenant_id = u.tenant_id AND t2.id = u.ticket_id)
        RETURNING u.ticket_id INTO v_claimed;
    END IF;

    RETURN QUERY
    WITH redeemed AS (
        UPDATE tickets t
        SET redemptions = t.redemptions + 1, failed_attempts = 0, last_redeemed_at = p_now
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND t.state = 'active'
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
        INSERT INTO redemptions (tenant_id, id, program_id, ticket_id, created_at)
        SELECT p_tenant_id, p_redemption_id, p_program_id, r.ticket_id, p_now FROM redeemed r
    )
    SELECT r.ticket_id, r.payload, r.object_id, r.group_addresses, r.remaining::bigint FROM redeemed r;

    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_claimed IS NOT NULL AND v_rows = 0 THEN
        UPDATE redeemer_uses SET uses = uses - 1
        WHERE tenant_id = p_tenant_id AND ticket_id = v_claimed AND redeemer_key = p_redeemer_key;
    END IF;
END
$$;
