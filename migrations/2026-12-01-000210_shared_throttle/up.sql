-- The failed-redemption throttle's counts, shared by every replica so that one
-- budget holds however the load balancer spreads a client (docs/security.md,
-- "Several replicas"). Written only when an attempt fails, never on success.
--
-- UNLOGGED: no WAL, so an upsert costs a buffer change and no fsync; after a
-- crash PostgreSQL empties the table, which gives every client and program a
-- fresh minute once — acceptable for counters that live a minute anyway.
-- `subject` is `client:<network>` or `program:<id>`; `minute` is seconds since
-- the epoch / 60. Replicas delete the minutes that have ended.
CREATE UNLOGGED TABLE throttle_windows (
    subject TEXT NOT NULL,
    minute BIGINT NOT NULL,
    failures INTEGER NOT NULL CHECK (failures > 0),
    PRIMARY KEY (subject, minute)
);

COMMENT ON TABLE throttle_windows IS
    'not tenant-owned: failure counts per client network and program for one minute, shared by the replicas; on Citus keep it a local table of the coordinator';
