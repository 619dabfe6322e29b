-- Two costs of every redemption that the batch statement (tessera_redeem_batch) pays
-- per member, measured under pgbench at 32 codes per statement (issue 12: HTTP
-- redemption at 1.2x the bare single statement; docs/performance.md):
--
-- 1. The redemption record's foreign key to its ticket. Its check is a trigger per
--    inserted row, an SPI query that locks the ticket FOR KEY SHARE: 13 % of the
--    batch statement (3.27 ms -> 2.85 ms for 32 members, pgbench at one client);
--    the server redeemed about 8 % more without it. The check cannot fail: every
--    statement that inserts a record (tessera_redeem, tessera_redeem_batch, a
--    hold's confirmation) has locked or updated that ticket's row in the same
--    statement, and holds the lock until it commits. A DELETE of the ticket either
--    came first (the statement waits for it, then finds no row and records
--    nothing) or waits for the redemption's commit.
--    What the key did besides is the cascade: deleting a ticket (with its program,
--    its tenant, or alone) deleted its records. A row trigger does that now; a row
--    trigger, not a statement trigger with a transition table, because Citus runs
--    row triggers on distributed tables (docs/operations.md) and deletes are rare.
--    Its DELETE is a statement of its own, so under READ COMMITTED it sees a record
--    committed while the delete waited for the ticket's lock
--    (tests/redemption_records.rs).
ALTER TABLE redemptions DROP CONSTRAINT redemptions_tenant_id_ticket_id_fkey;

CREATE FUNCTION tessera_forget_redemptions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM redemptions r WHERE r.tenant_id = OLD.tenant_id AND r.ticket_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_forget_redemptions AFTER DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tessera_forget_redemptions();

-- 2. The ticket's own update. A batch of tickets is inserted into full pages, so
--    a redemption's update can be HOT (no new index entries) only once an earlier
--    update has left a dead version on the page to prune; otherwise the new
--    version goes to another page and adds an entry to each of the four indexes
--    on tickets. Over 15 s of HTTP redemptions right after issuing 200,000
--    tickets, 50 % of the updates were HOT; with a fifth of each page left free,
--    69 %, and the server redeemed 6-8 % more (docs/performance.md, sitting of
--    2026-12-02 17:13). The setting applies to pages written from now on
--    (issuance, import); `VACUUM FULL tickets` rewrites the old ones with it.
ALTER TABLE tickets SET (fillfactor = 80);
