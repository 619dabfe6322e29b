-- Group commit of standalone uses (issue 12, point 3). The adapter evaluates a
-- batch of uses in one statement, one call of this function per member over
-- `unnest(...) WITH ORDINALITY`: a VOLATILE function's statements each take a
-- fresh snapshot, so a call sees what the earlier calls of the same statement
-- wrote, and the same ticket twice in one batch is used twice at most as often as
-- it has uses left.
--
-- It is the standalone use of `PgStore::use_ticket` (one conditional UPDATE:
-- expiry and uses left as predicates; NULL - 1 stays NULL, so an unlimited ticket
-- stays unlimited; a ticket whose last use this was is deleted) except for the
-- tenant's live-ticket counter, which it does NOT lower: it reports `removed` and
-- the caller lowers the counter once per tenant at the end of the statement, after
-- every ticket row of the batch is locked. Taking the counter row inside the loop
-- would let two batches lock (ticket, counter) and (counter, ticket) in opposite
-- orders and deadlock.
CREATE FUNCTION tessera_use_standalone_member(
    p_tenant_id text,
    p_token_hash bytea,
    p_now timestamptz
)
RETURNS TABLE (uses_left bigint, payload text, removed boolean)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_left bigint;
    v_payload text;
BEGIN
    UPDATE standalone_tickets s SET uses_left = s.uses_left - 1
    WHERE s.tenant_id = p_tenant_id AND s.token_hash = p_token_hash
      AND (s.expires_at IS NULL OR s.expires_at > p_now)
      AND (s.uses_left IS NULL OR s.uses_left > 0)
    RETURNING s.uses_left, s.payload INTO v_left, v_payload;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_left = 0 THEN
        DELETE FROM standalone_tickets s
        WHERE s.tenant_id = p_tenant_id AND s.token_hash = p_token_hash;
    END IF;
    RETURN QUERY SELECT v_left, v_payload, COALESCE(v_left = 0, false);
END
$$;
