DROP FUNCTION tessera_refuse(text, bytea, text, timestamptz, text, bytea, timestamptz[], jsonb, integer, text, text, text[], bigint);
DROP FUNCTION tessera_refusal_reason(programs, tickets, timestamptz, text, bigint, bigint);
DROP FUNCTION tessera_count_failures(text[], bigint);
-- The counts live a minute: the shards of the current one are summed into one row.
CREATE TEMPORARY TABLE throttle_windows_summed ON COMMIT DROP AS
    SELECT subject, minute, sum(failures)::integer AS failures FROM throttle_windows GROUP BY subject, minute;
DELETE FROM throttle_windows;
ALTER TABLE throttle_windows DROP CONSTRAINT throttle_windows_pkey;
ALTER TABLE throttle_windows DROP COLUMN shard;
ALTER TABLE throttle_windows ADD PRIMARY KEY (subject, minute);
INSERT INTO throttle_windows (subject, minute, failures) SELECT subject, minute, failures FROM throttle_windows_summed;
