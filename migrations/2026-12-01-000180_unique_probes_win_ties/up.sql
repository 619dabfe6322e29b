-- Plans that cannot go wrong (issue 12). Right after a bulk insert (no ANALYZE, or
-- statistics from when the table was small) the planner estimates one row for
-- `tenant_id = $1 AND program_id = $3` on tickets_by_program, exactly what it
-- estimates for the unique probe of tickets_code_hash_unique. On such a tie of
-- costs PostgreSQL keeps the index it considered first, and it considers the most
-- recently created index first (measured on 15: the newer of two tied indexes wins,
-- whichever their columns). tickets_by_program was created after the unique
-- constraint, so a fresh batch was redeemed by walking every ticket of the program
-- with code_hash as a filter. A unique index that covers every equality does not
-- change that (its cost ties too); being the newest does.
--
-- So each unique index a hot statement probes is rebuilt here, after every index
-- that could tie with it, under the same name and columns (ON CONFLICT inference
-- and the constraint names errors are classified by are unchanged):
--   * tickets_code_hash_unique: tessera_redeem/hold/validate, the classification,
--     issuance's ON CONFLICT;
--   * standalone_tickets_token_hash_unique: the standalone use;
--   * programs: the primary key cannot be rebuilt (foreign keys hang on it), so a
--     unique index on the same columns, newer than programs_by_age, is added.
-- api_keys.key_hash has no competitor (no other index holds key_hash).
-- tests/plans.rs pins the plans; an index added to these tables later must keep
-- them (rebuild the probe after it, as here).
ALTER TABLE tickets
    DROP CONSTRAINT tickets_code_hash_unique,
    ADD CONSTRAINT tickets_code_hash_unique UNIQUE (tenant_id, code_hash);

ALTER TABLE standalone_tickets
    DROP CONSTRAINT standalone_tickets_token_hash_unique,
    ADD CONSTRAINT standalone_tickets_token_hash_unique UNIQUE (tenant_id, token_hash);

CREATE UNIQUE INDEX programs_probe ON programs (tenant_id, id);
