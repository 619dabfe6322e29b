-- The redemption lifecycle: redemption records (so a use can be rolled back),
-- holds (a use reserved while a payment runs) and validation, all decided by
-- conditional statements on the ticket's row like redemption itself.

-- Whether a program's redemptions may be rolled back (API: allowRollback).
ALTER TABLE programs ADD COLUMN allow_rollback boolean NOT NULL DEFAULT true;

-- How many of the ticket's holds are in state 'held', live or past their expiry
-- but not yet reaped. Kept on the ticket's row, not counted from `holds`, because
-- a conditional UPDATE that waits on the row lock re-checks its WHERE against the
-- new row version but evaluates subqueries with its old snapshot: a counter on
-- the row is the only count every concurrent writer sees. Every statement that
-- moves a hold out of 'held' lowers it in the same statement; an expired hold is
-- reaped (and the counter lowered) by whichever call finds the ticket full.
ALTER TABLE tickets ADD COLUMN held bigint NOT NULL DEFAULT 0 CHECK (held >= 0);

CREATE TABLE holds (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    program_id    text        NOT NULL,
    ticket_id     text        NOT NULL,
    -- 'held' past expires_at reads as expired; reaping makes it 'expired'.
    state         text        NOT NULL CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    -- The redemption a confirmed hold became.
    redemption_id text,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT holds_confirmed_has_redemption CHECK ((state = 'confirmed') = (redemption_id IS NOT NULL))
);
-- The holds a reaper looks at: only those still counted on their ticket.
CREATE INDEX holds_held_by_ticket ON holds (tenant_id, ticket_id, expires_at) WHERE state = 'held';

-- One row per successful redemption, so it can be rolled back exactly once.
CREATE TABLE redemptions (
    tenant_id      text        NOT NULL,
    id             text        NOT NULL,
    program_id     text        NOT NULL,
    ticket_id      text        NOT NULL,
    created_at     timestamptz NOT NULL,
    rolled_back_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
-- For the cascade when a program (and its tickets) is deleted.
CREATE INDEX redemptions_by_ticket ON redemptions (tenant_id, ticket_id);

-- The hot path, as in migration redeem_function, with three changes: a new last
-- parameter p_redemption_id; live holds count as used (`t.redemptions + t.held <
-- limit`, and in `remaining`); and a CTE `recorded` inserting the redemption row.
-- The events' data gains "redemptionId".
DROP FUNCTION tessera_redeem(text, bytea, text, timestamptz, text, text, text);
CREATE FUNCTION tessera_redeem(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_redeemed_event_id text,
    p_exhausted_event_id text,
    p_redemption_id text
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
        SET redemptions = t.redemptions + 1, failed_attempts = 0, last_redeemed_at = p_now
        FROM programs p
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
          AND p.tenant_id = t.tenant_id AND p.id = t.program_id
          AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
          AND t.state = 'active'
          AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
          AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
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
END
$$;

-- A hold: tessera_redeem's statement with the same predicate, reserving the use
-- (`held + 1`) instead of spending it, inserting the hold and its `ticket.held`
-- event. A per-redeemer share extends both statements alike.
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

-- Validation: tessera_redeem's predicate, read-only, at the same instant.
CREATE FUNCTION tessera_validate(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text
)
RETURNS TABLE (ticket_id text, object_id text, group_addresses text[], remaining bigint)
LANGUAGE sql STABLE
AS $$
    SELECT t.id, p.object_id, p.group_addresses,
        (LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
            - t.redemptions - t.held)::bigint
    FROM tickets t JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id
    WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND t.program_id = p_program_id
      AND p.state = 'active' AND p.start_time <= p_now AND p_now < p.end_time
      AND t.state = 'active'
      AND t.redemptions + t.held < LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)
      AND (t.email_normalized IS NULL OR t.email_normalized = p_email)
$$;

-- Expires the ticket's holds whose time is up, lowering its counter by as many in
-- the same statement (each hold row is claimed once: its state is re-checked
-- under its row lock), and returns how many holds the ticket still counts.
CREATE FUNCTION tessera_reap_holds(p_tenant_id text, p_ticket_id text, p_now timestamptz)
RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
    WITH reaped AS (
        UPDATE holds SET state = 'expired'
        WHERE tenant_id = p_tenant_id AND ticket_id = p_ticket_id AND state = 'held' AND expires_at <= p_now
        RETURNING 1
    )
    UPDATE tickets SET held = held - (SELECT count(*) FROM reaped)
    WHERE tenant_id = p_tenant_id AND id = p_ticket_id AND EXISTS (SELECT 1 FROM reaped);
    RETURN COALESCE((SELECT held FROM tickets WHERE tenant_id = p_tenant_id AND id = p_ticket_id), 0);
END
$$;

-- Idempotency-Key records: the first request's answer, sealed (AEAD under a key
-- derived from the master key), replayed for 24 hours. `scope` is the caller's
-- tenant id, or for a public redemption the program id it names. The primary key
-- decides which of concurrent first requests runs (INSERT … ON CONFLICT).
CREATE TABLE idempotency_keys (
    scope       text        NOT NULL,
    key_hash    bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
    state       text        NOT NULL CHECK (state IN ('running', 'done')),
    status      smallint,
    sealed      bytea,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key_hash)
);
-- For the purge, which runs across scopes.
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
