-- Events become a table partitioned by month of `created_at`, so that retention
-- drops whole partitions (no DELETE, no bloat) and stats scan only the months
-- they ask for. A partitioned table's keys must hold the partition column, so the
-- primary key is (tenant_id, created_at, seq): still tenant first. Event ids are
-- random (>= 64 bits) and looked up through a plain (tenant_id, id) index.
--
-- `tx` is the id of the writing transaction. The events feed orders by (tx, seq)
-- and returns only events whose transaction is older than the oldest one still
-- running (pg_snapshot_xmin), so a page never skips an event that commits later
-- with a smaller seq: every event not yet visible has tx >= that horizon, i.e.
-- sorts after everything already returned.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_id_unique TO events_unpartitioned_id_unique;
ALTER INDEX events_by_program RENAME TO events_unpartitioned_by_program;
-- The sequence outlives the old table: the new one keeps numbering after it.
ALTER SEQUENCE events_seq_seq OWNED BY NONE;

CREATE TABLE events (
    tenant_id  text        NOT NULL,
    seq        bigint      NOT NULL DEFAULT nextval('events_seq_seq'),
    tx         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    id         text        NOT NULL,
    type       text        NOT NULL,
    created_at timestamptz NOT NULL,
    program_id text,
    ticket_id  text,
    data       jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, created_at, seq)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;

-- The feed's order, and its cursor lookup.
CREATE INDEX events_feed ON events (tenant_id, tx, seq);
CREATE INDEX events_by_id ON events (tenant_id, id);
-- One program's events in feed order: the feed filtered by program, and the
-- stats' tail of events not rolled up yet (tx at or above the rollup horizon).
CREATE INDEX events_by_program ON events (tenant_id, program_id, tx, seq)
    WHERE program_id IS NOT NULL;

-- Catches anything outside the monthly partitions (a clock far off, a partition
-- not made yet), so an insert never fails for want of a partition.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Creates the monthly partition holding `p_at` (UTC months) unless it exists,
-- moving any rows the default partition holds for that month into it. Returns its
-- name when this call created it, NULL otherwise.
CREATE FUNCTION tessera_ensure_event_partition(p_at timestamptz)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_from timestamptz := date_trunc('month', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_to   timestamptz := (date_trunc('month', p_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    v_name text := 'events_' || to_char(p_at AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    -- Replicas maintain partitions concurrently: one at a time ("tessera" + 2).
    PERFORM pg_advisory_xact_lock(8387236824065302786);
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'events'::regclass AND c.relname = v_name) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE created_at >= $1 AND created_at < $2 RETURNING *)
         INSERT INTO %I SELECT * FROM moved', v_name) USING v_from, v_to;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_from, v_to);
    RETURN v_name;
END
$$;

-- Drops every monthly partition that ends at or before `p_before`, and deletes
-- the default partition's rows older than it. Returns the dropped partitions.
CREATE FUNCTION tessera_drop_event_partitions(p_before timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql
AS $$
DECLARE
    v_name text;
BEGIN
    PERFORM pg_advisory_xact_lock(8387236824065302786);
    FOR v_name IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
          AND (to_timestamp(substr(c.relname, 8), 'YYYY_MM')::timestamp + interval '1 month')
              AT TIME ZONE 'UTC' <= p_before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', v_name);
        RETURN NEXT v_name;
    END LOOP;
    DELETE FROM events_default WHERE created_at < p_before;
END
$$;

-- Stats read hourly counts, not raw events: a program with a million events in
-- a month is 744 hours x a few types. The server's maintenance rolls events up
-- per tenant, in feed order (tx), up to the same horizon the feed uses, so every
-- event is counted once; a stats query adds the not-yet-rolled-up tail from the
-- events themselves, in one snapshot (see tessera-postgres src/event_stats.rs).
CREATE TABLE event_rollups (
    tenant_id  text        NOT NULL,
    program_id text        NOT NULL,
    bucket     timestamptz NOT NULL,
    type       text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    n          bigint      NOT NULL CHECK (n >= 0),
    PRIMARY KEY (tenant_id, program_id, bucket, type, reason)
);

-- Per tenant: every event with tx below `horizon` is counted in event_rollups.
CREATE TABLE event_rollup_horizons (
    tenant_id text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    horizon   xid8 NOT NULL
);

-- Rolls up one tenant's events between its horizon and the current one (all
-- transactions below it have ended). Concurrent callers queue on the horizon row.
CREATE FUNCTION tessera_roll_up_events(p_tenant text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_from xid8;
    v_to   xid8;
    v_rows bigint;
BEGIN
    INSERT INTO event_rollup_horizons (tenant_id, horizon) VALUES (p_tenant, '0')
    ON CONFLICT (tenant_id) DO NOTHING;
    SELECT horizon INTO v_from FROM event_rollup_horizons WHERE tenant_id = p_tenant FOR UPDATE;
    v_to := pg_snapshot_xmin(pg_current_snapshot());
    IF v_to <= v_from THEN
        RETURN 0;
    END IF;
    INSERT INTO event_rollups AS r (tenant_id, program_id, bucket, type, reason, n)
    SELECT e.tenant_id, e.program_id,
           date_trunc('hour', e.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           e.type, coalesce(e.data->>'reason', ''),
           sum(CASE WHEN e.type IN ('ticket.batch_issued', 'ticket.batch_imported')
                    THEN coalesce((e.data->>'count')::bigint, 0) ELSE 1 END)
    FROM events e
    WHERE e.tenant_id = p_tenant AND e.tx >= v_from AND e.tx < v_to
      AND e.program_id IS NOT NULL
      AND e.type IN ('ticket.issued', 'ticket.batch_issued', 'ticket.batch_imported',
                     'ticket.redeemed', 'ticket.redemption_failed')
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, program_id, bucket, type, reason) DO UPDATE SET n = r.n + excluded.n;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    UPDATE event_rollup_horizons SET horizon = v_to WHERE tenant_id = p_tenant;
    RETURN v_rows;
END
$$;

INSERT INTO events (tenant_id, seq, tx, id, type, created_at, program_id, ticket_id, data)
SELECT tenant_id, seq, '0'::xid8, id, type, created_at, program_id, ticket_id, data
FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

SELECT tessera_ensure_event_partition(month)
FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month
      FROM events_default
      UNION SELECT now() UNION SELECT now() + interval '1 month') AS months;
