-- Tenant first: tenant_id leads every primary key and index, and every statement
-- filters by it, so the tables can be distributed by tenant (Citus) later without
-- a rewrite. Exactly three lookups cannot know the tenant and carry their own
-- tenant-less unique index:
--   * api_keys.key_hash    - a presented API key is what tells us the tenant;
--   * programs.id          - a public redemption names only the program;
--   * tickets.link_hash    - a ticket link carries only its opaque token.
-- Secrets (codes, API keys, standalone tokens, link tokens) are stored only as
-- their 32-byte keyed hash: a dump of this database reveals no usable secret.

CREATE TABLE tenants (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    tenant_id  text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id         text        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('admin', 'issuer', 'redeemer')),
    key_hash   bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_keys_key_hash_unique UNIQUE (key_hash)
);
CREATE INDEX api_keys_by_age ON api_keys (tenant_id, created_at, id);

CREATE TABLE programs (
    tenant_id              text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                     text        NOT NULL,
    name                   text,
    object_id              text        NOT NULL,
    group_addresses        text[]      NOT NULL DEFAULT '{}',
    ntp_class              smallint    NOT NULL CHECK (ntp_class BETWEEN 1 AND 9),
    max_tickets            bigint      NOT NULL CHECK (max_tickets >= 0),
    max_redemptions        bigint      NOT NULL CHECK (max_redemptions >= 1),
    start_time             timestamptz NOT NULL,
    end_time               timestamptz NOT NULL,
    ticket_length          smallint    NOT NULL CHECK (ticket_length BETWEEN 4 AND 64),
    alphabet               text        NOT NULL CHECK (alphabet IN ('alphanumeric', 'humane', 'numeric')),
    url_prefix             text,
    one_active_per_subject boolean     NOT NULL,
    state                  text        NOT NULL CHECK (state IN ('active', 'suspended')),
    -- Raised by the conditional UPDATE that enforces max_tickets at issuance.
    issued_tickets         bigint      NOT NULL DEFAULT 0 CHECK (issued_tickets >= 0),
    version                bigint      NOT NULL CHECK (version >= 1),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT programs_id_unique UNIQUE (id),
    CONSTRAINT programs_window CHECK (end_time > start_time)
);
CREATE INDEX programs_by_age ON programs (tenant_id, created_at, id);

CREATE TABLE tickets (
    tenant_id         text        NOT NULL,
    id                text        NOT NULL,
    program_id        text        NOT NULL,
    code_hash         bytea       NOT NULL CHECK (octet_length(code_hash) = 32),
    link_hash         bytea       CHECK (octet_length(link_hash) = 32),
    email             text,
    -- Lower-cased, so the redemption statement compares with a plain equality.
    email_normalized  text,
    subject           text,
    -- Equals subject only in one-active-per-subject programs, so the partial
    -- unique index below enforces that rule atomically and ignores other programs.
    exclusive_subject text,
    -- NULL: follow the program's limit, whatever it is at redemption time.
    max_redemptions   bigint      CHECK (max_redemptions >= 1),
    redemptions       bigint      NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    state             text        NOT NULL CHECK (state IN ('active', 'locked', 'disabled', 'revoked')),
    failed_attempts   bigint      NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    payload           text,
    last_redeemed_at  timestamptz,
    last_failed_at    timestamptz,
    created_at        timestamptz NOT NULL,
    version           bigint      NOT NULL CHECK (version >= 1),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, program_id) REFERENCES programs (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT tickets_code_hash_unique UNIQUE (tenant_id, code_hash),
    CONSTRAINT tickets_link_hash_unique UNIQUE (link_hash),
    CONSTRAINT tickets_email_normalized CHECK ((email IS NULL) = (email_normalized IS NULL)),
    CONSTRAINT tickets_exclusive_subject CHECK (exclusive_subject IS NULL OR exclusive_subject = subject)
);
CREATE INDEX tickets_by_program ON tickets (tenant_id, program_id, created_at, id);
CREATE UNIQUE INDEX tickets_one_active_per_subject
    ON tickets (tenant_id, program_id, exclusive_subject)
    WHERE state = 'active' AND exclusive_subject IS NOT NULL;

CREATE TABLE standalone_tickets (
    tenant_id   text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          text        NOT NULL,
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    name        text,
    permissions text,
    payload     text,
    -- 0 = unlimited, as the API says; uses_left is then NULL.
    total_uses  bigint      NOT NULL CHECK (total_uses >= 0),
    uses_left   bigint      CHECK (uses_left >= 0),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT standalone_tickets_token_hash_unique UNIQUE (tenant_id, token_hash)
);
CREATE INDEX standalone_tickets_by_age ON standalone_tickets (tenant_id, created_at, id);
CREATE INDEX standalone_tickets_by_expiry ON standalone_tickets (tenant_id, expires_at)
    WHERE expires_at IS NOT NULL;

-- One row per tenant: the number of standalone_tickets rows it holds, raised by a
-- conditional UPDATE so the per-tenant cap holds under any concurrency.
CREATE TABLE tenant_counters (
    tenant_id       text   PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    live_standalone bigint NOT NULL DEFAULT 0 CHECK (live_standalone >= 0)
);

-- Append-only history, written in the same transaction as the change it records.
-- No foreign keys: a program.deleted event outlives its program.
CREATE TABLE events (
    tenant_id  text        NOT NULL,
    seq        bigserial   NOT NULL,
    id         text        NOT NULL,
    type       text        NOT NULL,
    created_at timestamptz NOT NULL,
    program_id text,
    ticket_id  text,
    data       jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, seq),
    CONSTRAINT events_id_unique UNIQUE (tenant_id, id)
);
CREATE INDEX events_by_program ON events (tenant_id, program_id, created_at)
    WHERE program_id IS NOT NULL;
