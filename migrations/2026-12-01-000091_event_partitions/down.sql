-- Back to one plain table with the original keys; event order and ids are kept.
ALTER SEQUENCE events_seq_seq OWNED BY NONE;
CREATE TABLE events_unpartitioned (
    tenant_id  text        NOT NULL,
    seq        bigint      NOT NULL DEFAULT nextval('events_seq_seq'),
    id         text        NOT NULL,
    type       text        NOT NULL,
    created_at timestamptz NOT NULL,
    program_id text,
    ticket_id  text,
    data       jsonb       NOT NULL DEFAULT '{}'
);
INSERT INTO events_unpartitioned (tenant_id, seq, id, type, created_at, program_id, ticket_id, data)
SELECT tenant_id, seq, id, type, created_at, program_id, ticket_id, data FROM events;
DROP TABLE events;
DROP FUNCTION tessera_ensure_event_partition(timestamptz);
DROP FUNCTION tessera_drop_event_partitions(timestamptz);
DROP FUNCTION tessera_roll_up_events(text);
DROP TABLE event_rollup_horizons;
DROP TABLE event_rollups;
ALTER TABLE events_unpartitioned RENAME TO events;
ALTER TABLE events ADD PRIMARY KEY (tenant_id, seq);
ALTER TABLE events ADD CONSTRAINT events_id_unique UNIQUE (tenant_id, id);
CREATE INDEX events_by_program ON events (tenant_id, program_id, created_at)
    WHERE program_id IS NOT NULL;
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;
