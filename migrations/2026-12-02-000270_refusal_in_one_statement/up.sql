-- A refused attempt in one further statement (issue 12, "Failures cost no more
-- than one further statement"). Until now the store classified a refusal in a
-- transaction of five to eight round trips (BEGIN, the program, the ticket, the
-- redeemer's uses, the holds, the event, COMMIT) and the throttle then added the
-- failure to `throttle_windows` in a statement of its own: about 2 ms of
-- PostgreSQL per failure, against 0.1 ms for a success in a batch.
--
-- `tessera_refuse` does all of it server-side: it reads the program and the
-- ticket by their unique keys, says why the attempt fails in the order
-- `Ticket::check_redeemable` then `Ticket::check_redeemer` give
-- (`tessera_refusal_reason`, pinned to the domain by tests/rules_agree.rs), reaps
-- the ticket's expired holds where they can change the answer, counts a wrong
-- email towards the lock, writes the failure event (and the lock's), and adds the
-- failure to the shared throttle counts, returning them. A NULL reason means the
-- rows say the attempt would now succeed (a change committed meanwhile): nothing
-- is written and the caller runs its statement again.
--
-- The refusal's transaction commits without waiting for its WAL flush
-- (synchronous_commit = off, set by the function for its own transaction): what
-- it writes is a record of a refusal — the failure event, a wrong email's count —
-- which no client was promised is durable (invariant 6 is about a 2xx, and a
-- success still waits for its flush). A crash of PostgreSQL can lose the last
-- wal_writer_delay x 3 (0.6 s by default) of them. Without this, the throttle
-- count's row lock, taken in the same transaction, would be held until the flush:
-- every failure of one program (or one client network) would queue behind the
-- flush of the one before it. Every refusal commits the same way, so a wrong
-- email takes the time of an unknown code.

-- Adds one failure to each of p_subjects in p_minute and returns, in the order
-- of p_subjects, each one's failures in that minute over every replica. PL/pgSQL,
-- not SQL: a SQL function with a data-modifying CTE is never inlined and is
-- planned again on every call; PL/pgSQL keeps the plan per connection.
CREATE FUNCTION tessera_count_failures(p_subjects text[], p_minute bigint)
RETURNS integer[]
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_counts integer[];
BEGIN
    WITH added AS (
        -- In subject order: two transactions adding to the same subjects lock
        -- their rows in the same order and cannot deadlock.
        INSERT INTO throttle_windows AS w (subject, minute, failures)
        SELECT DISTINCT s.subject, p_minute, 1
        FROM unnest(p_subjects) AS s(subject)
        ORDER BY 1
        ON CONFLICT (subject, minute) DO UPDATE SET failures = w.failures + 1
        RETURNING w.subject, w.failures
    )
    SELECT array_agg(a.failures ORDER BY u.position)
    INTO v_counts
    FROM unnest(p_subjects) WITH ORDINALITY AS u(subject, position)
    JOIN added a ON a.subject = u.subject;
    RETURN v_counts;
END
$$;

-- Why an attempt on these rows fails, as the domain says it, or NULL when it
-- succeeds: the program first, then the ticket's state, its uses, its email,
-- and last the redeemer's share. p_uses is the presented redeemer's uses of the
-- ticket (NULL: no redeemer presented); p_counted the ticket's uses counted
-- (redemptions, plus live holds once reaped).
CREATE FUNCTION tessera_refusal_reason(
    p_program programs,
    p_ticket tickets,
    p_now timestamptz,
    p_email text,
    p_uses bigint,
    p_counted bigint
)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE
        WHEN (p_program).state = 'suspended' THEN 'program_suspended'
        WHEN p_now < (p_program).start_time THEN 'program_not_started'
        WHEN p_now >= (p_program).end_time THEN 'program_ended'
        WHEN (p_ticket).state = 'revoked' THEN 'ticket_revoked'
        WHEN (p_ticket).state = 'disabled' THEN 'ticket_disabled'
        WHEN (p_ticket).state = 'locked'
             AND ((p_ticket).locked_until IS NULL OR (p_ticket).locked_until > p_now) THEN 'ticket_locked'
        WHEN p_counted >= LEAST(COALESCE((p_ticket).max_redemptions, (p_program).max_redemptions),
                                (p_program).max_redemptions) THEN 'ticket_exhausted'
        WHEN (p_ticket).email_normalized IS NOT NULL
             AND (p_email IS NULL OR (p_ticket).email_normalized <> p_email) THEN 'email_mismatch'
        WHEN (p_ticket).per_redeemer_limit IS NOT NULL AND p_uses IS NULL THEN 'redeemer_required'
        WHEN (p_ticket).per_redeemer_limit IS NOT NULL
             AND p_uses >= (p_ticket).per_redeemer_limit THEN 'redeemer_limit_reached'
    END
$$;

CREATE FUNCTION tessera_refuse(
    p_tenant_id text,
    p_code_hash bytea,
    p_program_id text,
    p_now timestamptz,
    p_email text,
    p_redeemer_key bytea,
    -- now + email_lock_seconds x 2^k for k = 0, 1, ...: the lock a wrong email
    -- sets after k earlier locks (the last element caps k), as timestamps and as
    -- the JSON the lock's event carries.
    p_lock_ends timestamptz[],
    p_lock_ends_json jsonb,
    p_mismatches_before_lock integer,
    p_failed_event_id text,
    p_locked_event_id text,
    -- The throttle subjects to count the failure against (none: not shared).
    p_subjects text[],
    p_minute bigint
)
RETURNS TABLE (reason text, failure_counts integer[])
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_program programs;
    v_ticket tickets;
    v_uses bigint;
    v_held bigint;
    v_reason text;
    v_locks integer;
    v_attempts bigint;
    v_state text;
    v_until timestamptz;
BEGIN
    -- A wrong email that finds the ticket locked or disabled meanwhile is judged
    -- again: three rounds, as the store's loop had them.
    FOR v_round IN 1..3 LOOP
        SELECT * INTO v_program FROM programs p
        WHERE p.tenant_id = p_tenant_id AND p.id = p_program_id;
        -- The ticket by its unique (tenant, code hash) alone, its program checked
        -- as a filter (migration program_id_as_filter).
        SELECT * INTO v_ticket FROM tickets t
        WHERE t.tenant_id = p_tenant_id AND t.code_hash = p_code_hash AND (t.program_id = p_program_id) IS TRUE;
        IF v_program.id IS NULL OR v_ticket.id IS NULL THEN
            v_reason := 'ticket_not_found';
            v_ticket := NULL;
            EXIT;
        END IF;
        IF p_redeemer_key IS NOT NULL THEN
            v_uses := COALESCE((SELECT u.uses FROM redeemer_uses u
                WHERE u.tenant_id = p_tenant_id AND u.ticket_id = v_ticket.id AND u.redeemer_key = p_redeemer_key), 0);
        ELSE
            v_uses := NULL;
        END IF;
        v_reason := tessera_refusal_reason(v_program, v_ticket, p_now, p_email, v_uses, v_ticket.redemptions);
        -- Holds are the one rule the reason above does not see: where the ticket
        -- looks redeemable (or the email is wrong, which is judged after its uses,
        -- or the redeemer's share is spent, which an expired hold may still
        -- claim), its expired holds are reaped and its live ones counted as used.
        IF v_reason IS NULL OR v_reason IN ('email_mismatch', 'redeemer_limit_reached') THEN
            v_held := tessera_reap_holds(p_tenant_id, v_ticket.id, p_now);
            IF v_reason = 'redeemer_limit_reached' AND p_redeemer_key IS NOT NULL THEN
                -- Reaping gives expired holds' redeemer shares back too.
                v_uses := COALESCE((SELECT u.uses FROM redeemer_uses u
                    WHERE u.tenant_id = p_tenant_id AND u.ticket_id = v_ticket.id AND u.redeemer_key = p_redeemer_key), 0);
            END IF;
            v_reason := tessera_refusal_reason(v_program, v_ticket, p_now, p_email, v_uses,
                v_ticket.redemptions + v_held);
        END IF;
        IF v_reason IS NULL THEN
            -- Redeemable now: a row with no reason, and the caller runs its
            -- statement again.
            RETURN NEXT;
            RETURN;
        END IF;
        -- No email at all is not a wrong guess at it: refused, never counted
        -- towards the lock (else anyone holding the code locks its owner out).
        EXIT WHEN v_reason <> 'email_mismatch' OR p_email IS NULL;
        -- One conditional UPDATE counts and locks, exact under concurrency. An
        -- expired lock starts the count over at one; SET expressions see the old row.
        UPDATE tickets t SET
            failed_attempts = (CASE WHEN t.state = 'locked' THEN 0 ELSE t.failed_attempts END) + 1,
            last_failed_at = p_now,
            state = CASE WHEN (CASE WHEN t.state = 'locked' THEN 0 ELSE t.failed_attempts END) + 1
                >= p_mismatches_before_lock THEN 'locked' ELSE 'active' END,
            locked_until = CASE WHEN (CASE WHEN t.state = 'locked' THEN 0 ELSE t.failed_attempts END) + 1
                >= p_mismatches_before_lock
                THEN p_lock_ends[LEAST(t.email_locks, array_length(p_lock_ends, 1) - 1) + 1] ELSE NULL END,
            email_locks = t.email_locks + CASE WHEN (CASE WHEN t.state = 'locked' THEN 0 ELSE t.failed_attempts END) + 1
                >= p_mismatches_before_lock THEN 1 ELSE 0 END,
            version = t.version + CASE WHEN (CASE WHEN t.state = 'locked' THEN 0 ELSE t.failed_attempts END) + 1
                >= p_mismatches_before_lock OR t.state = 'locked' THEN 1 ELSE 0 END
        WHERE t.tenant_id = p_tenant_id AND t.id = v_ticket.id
          AND (t.state = 'active' OR (t.state = 'locked' AND t.locked_until <= p_now))
        RETURNING t.failed_attempts, t.state, t.email_locks - 1, t.locked_until
        INTO v_attempts, v_state, v_locks, v_until;
        IF v_state IS NOT NULL THEN
            -- The WHERE admits only active (or expired) tickets, so "locked" here
            -- means this update locked it: the event is written once per lock.
            IF v_state = 'locked' THEN
                INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
                VALUES (p_tenant_id, p_locked_event_id, 'ticket.locked', p_now, p_program_id, v_ticket.id,
                    jsonb_build_object('failedAttempts', v_attempts,
                        'lockedUntil', p_lock_ends_json -> LEAST(v_locks, jsonb_array_length(p_lock_ends_json) - 1)));
            END IF;
            EXIT;
        END IF;
        v_reason := NULL;
    END LOOP;
    IF v_reason IS NULL THEN
        RAISE EXCEPTION 'redemption state kept changing during classification';
    END IF;

    -- A record of a refusal, not an acknowledgement: its commit does not wait
    -- for the WAL flush (see the top of this file). Set here, once the attempt
    -- is refused: a run that finds it redeemable commits as usual.
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
    VALUES (p_tenant_id, p_failed_event_id, 'ticket.redemption_failed', p_now, p_program_id, v_ticket.id,
        jsonb_build_object('reason', v_reason));

    reason := v_reason;
    IF cardinality(p_subjects) > 0 THEN
        failure_counts := tessera_count_failures(p_subjects, p_minute);
    END IF;
    RETURN NEXT;
END
$$;
