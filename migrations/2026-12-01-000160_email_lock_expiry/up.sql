-- Email locks expire (issue 16). A fifth consecutive wrong email locks a ticket
-- until `locked_until` (TESSERA_EMAIL_LOCK_SECONDS, doubled for each earlier lock
-- counted in `email_locks`) instead of until an admin unlocks it: whoever knows a
-- code could otherwise lock its owner out for good. An expired lock counts as
-- active (Ticket::state_at); the next wrong email starts a new count. The row keeps
-- `state = 'locked'` after expiry, even through a success: turning it 'active'
-- could collide with the one-active-ticket-per-subject index.
--
-- tessera_redeem is replaced whole, unchanged but for two things:
--   1. the predicate `t.state = 'active'` becomes
--      `(t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))`;
--   2. a success also sets `email_locks = 0` (consecutive locks double; a success
--      ends the series).
ALTER TABLE tickets
    ADD COLUMN locked_until timestamptz,
    ADD COLUMN email_locks integer NOT NULL DEFAULT 0 CHECK (email_locks >= 0);

-- Tickets locked before locks expired get the default lock from their last wrong
-- email, as if locked now (the operator's setting is not known here).
UPDATE tickets
SET locked_until = COALESCE(last_failed_at, now()) + interval '900 seconds', email_locks = 1
WHERE state = 'locked';

CREATE OR REPLACE FUNCTION tessera_redeem(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_redeemed_event_id text,
    p_exhausted_event_id text
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
BEGIN
    RETURN QUERY
    WITH redeemed AS (
        UPDATE tickets t
        SET redemptions = t.redemptions + 1, failed_attempts = 0, last_redeemed_at = p_now,
            email_locks = 0
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))
          AND t.redemptions < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
        RETURNING t.id AS ticket_id, t.payload, p.object_id, p.group_addresses,
            LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
                - t.redemptions AS remaining
    ), logged AS (
        INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
        SELECT p_tenant_id, p_redeemed_event_id, 'ticket.redeemed', p_now, p_program_id, r.ticket_id,
               jsonb_build_object('remaining', r.remaining)
        FROM redeemed r
        UNION ALL
        SELECT p_tenant_id, p_exhausted_event_id, 'ticket.exhausted', p_now, p_program_id, r.ticket_id,
               '{}'::jsonb
        FROM redeemed r WHERE r.remaining = 0
    )
    SELECT r.ticket_id, r.payload, r.object_id, r.group_addresses, r.remaining::bigint FROM redeemed r;
END
$$;
