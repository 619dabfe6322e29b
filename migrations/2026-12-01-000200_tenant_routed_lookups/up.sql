-- Every lookup finds its tenant first (issue 14), so every table can be
-- distributed by tenant (Citus): no primary key or unique index of a tenant-owned
-- table may lack tenant_id. The three lookups that used to start without a tenant
-- now route to it (docs/operations.md, "Scaling out", says why each way):
--   * API keys made from now on read `tsk_<tenant part>_<secret>`; keys made
--     before keep working through legacy_api_key_directory, filled here once.
--   * Program ids stay as they are (they are public, printed in issuer strings):
--     program_directory maps each one to its tenant. Programs are rare, so one
--     write to a replicated table per program is cheap.
--   * Link tokens made from now on read `<tenant part>_<secret>`: a link is made
--     per ticket, too often for a replicated table. Links made before keep
--     working through legacy_link_directory, filled here once and never again.
-- The directories carry no foreign key: a Citus reference table cannot reference
-- a distributed one. A stale row (its key, program or ticket deleted) routes to a
-- tenant where the lookup then finds nothing.

CREATE TABLE program_directory (
    program_id text PRIMARY KEY,
    tenant_id  text NOT NULL
);
COMMENT ON TABLE program_directory IS
    'reference table: routes a public program id (a public redemption names nothing else) to its tenant; one row per program, written when the program is made';
INSERT INTO program_directory (program_id, tenant_id) SELECT id, tenant_id FROM programs;
ALTER TABLE programs DROP CONSTRAINT programs_id_unique;

CREATE TABLE legacy_api_key_directory (
    key_hash  bytea PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    tenant_id text  NOT NULL
);
COMMENT ON TABLE legacy_api_key_directory IS
    'reference table: routes API keys made before keys carried their tenant; filled once by migration 000200, only ever shrinks';
INSERT INTO legacy_api_key_directory (key_hash, tenant_id) SELECT key_hash, tenant_id FROM api_keys;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_key_hash_unique;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_hash_unique UNIQUE (tenant_id, key_hash);

CREATE TABLE legacy_link_directory (
    link_hash bytea PRIMARY KEY CHECK (octet_length(link_hash) = 32),
    tenant_id text  NOT NULL
);
COMMENT ON TABLE legacy_link_directory IS
    'reference table: routes link tokens made before links carried their tenant; filled once by migration 000200, never written again';
INSERT INTO legacy_link_directory (link_hash, tenant_id)
SELECT link_hash, tenant_id FROM tickets WHERE link_hash IS NOT NULL;
ALTER TABLE tickets DROP CONSTRAINT tickets_link_hash_unique;
ALTER TABLE tickets ADD CONSTRAINT tickets_link_hash_unique UNIQUE (tenant_id, link_hash);
