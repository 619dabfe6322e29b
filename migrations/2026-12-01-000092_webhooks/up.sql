-- Webhooks and their outbox. A delivery row is written by a trigger on `events`,
-- so it commits in the same transaction as the change its event reports, whoever
-- wrote the event (the Rust stores or the tessera_redeem function). The trigger is
-- a row-level AFTER INSERT trigger: it works on a plain `events` table and on one
-- partitioned by time (PostgreSQL clones it onto every partition).

CREATE TABLE webhooks (
    tenant_id         text        NOT NULL,
    id                text        NOT NULL,
    url               text        NOT NULL,
    triggers          text[]      NOT NULL,
    -- The signing secret, sealed with an AEAD under a key derived from the master
    -- key (never in clear: a dump alone cannot forge signatures).
    secret_ciphertext bytea       NOT NULL,
    created_at        timestamptz NOT NULL,
    deleted_at        timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT webhooks_have_triggers CHECK (cardinality(triggers) > 0)
);
-- What the outbox trigger probes for every event: tiny, and empty for a tenant
-- without webhooks.
CREATE INDEX webhooks_live ON webhooks (tenant_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    tenant_id       text        NOT NULL,
    id              text        NOT NULL,
    webhook_id      text        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    -- The event JSON exactly as delivered (its text is the signed body).
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    last_status     integer,
    last_error      text,
    -- When a pending delivery is next due; while an attempt runs, the end of the
    -- attempting replica's lease. NULL once delivered or failed.
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    -- No foreign key to `events`: event partitions are dropped by retention while
    -- the delivery history stays.
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id),
    CONSTRAINT webhook_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed')),
    CONSTRAINT webhook_deliveries_due CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_by_webhook
    ON webhook_deliveries (tenant_id, webhook_id, created_at DESC, id DESC);
-- The delivery worker's claim. Cross-tenant by nature (one worker serves every
-- tenant), so this is the one index not led by tenant_id; it holds only pending rows.
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- An id like the Rust ones: prefix, creation time in ms as 8 base58 digits, then 12
-- base58 characters drawn from gen_random_uuid()'s CSPRNG bytes (≈ 70 bits).
CREATE FUNCTION tessera_new_id(p_prefix text) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    alphabet constant text := '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
    millis bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
    random_bytes bytea := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
    time_part text := '';
    random_part text := '';
    i int;
BEGIN
    FOR i IN 1..8 LOOP
        time_part := substr(alphabet, (millis % 58)::int + 1, 1) || time_part;
        millis := millis / 58;
    END LOOP;
    -- Bytes 0..5 of each UUID are wholly random (version and variant bits live in
    -- bytes 6 and 8). Rejection sampling keeps every character equally likely.
    FOR i IN 0..31 LOOP
        EXIT WHEN length(random_part) = 12;
        CONTINUE WHEN (i % 16) NOT BETWEEN 0 AND 5 AND (i % 16) NOT BETWEEN 9 AND 15;
        CONTINUE WHEN get_byte(random_bytes, i) >= 232; -- 232 = 4 × 58
        random_part := random_part || substr(alphabet, get_byte(random_bytes, i) % 58 + 1, 1);
    END LOOP;
    WHILE length(random_part) < 12 LOOP
        -- Ran out of unbiased bytes (rare): draw more.
        random_bytes := uuid_send(gen_random_uuid());
        FOR i IN 0..15 LOOP
            EXIT WHEN length(random_part) = 12;
            CONTINUE WHEN i NOT BETWEEN 0 AND 5 AND i NOT BETWEEN 9 AND 15;
            CONTINUE WHEN get_byte(random_bytes, i) >= 232;
            random_part := random_part || substr(alphabet, get_byte(random_bytes, i) % 58 + 1, 1);
        END LOOP;
    END LOOP;
    RETURN p_prefix || time_part || random_part;
END;
$$;

-- One pending delivery per live webhook of the event's tenant whose triggers name
-- the event's type. A tenant without webhooks costs one probe of an empty range of
-- webhooks_live: the EXISTS test runs first because starting the INSERT (opening
-- webhook_deliveries and its indexes) costs twice as much even when it inserts
-- nothing (docs/performance.md).
CREATE FUNCTION tessera_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM webhooks w
                   WHERE w.tenant_id = NEW.tenant_id AND w.deleted_at IS NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (tenant_id, id, webhook_id, event_id, event_type, payload, state, attempts,
         next_attempt_at, created_at)
    SELECT w.tenant_id, tessera_new_id('dlv_'), w.id, NEW.id, NEW.type,
           jsonb_build_object(
               'id', NEW.id,
               'type', NEW.type,
               'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'programId', NEW.program_id,
               'ticketId', NEW.ticket_id,
               'data', NEW.data),
           'pending', 0, now(), now()
    FROM webhooks w
    WHERE w.tenant_id = NEW.tenant_id AND w.deleted_at IS NULL
      AND NEW.type = ANY (w.triggers);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_webhook_outbox
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION tessera_webhook_outbox();
