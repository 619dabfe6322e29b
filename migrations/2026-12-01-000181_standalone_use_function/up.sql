-- The standalone use (POST /v1/tickets/use) in one statement (issue 12): the
-- conditional UPDATE that spends a use, and, when it spent the last one, the
-- delete of the row and the release of its place under the tenant's cap, which
-- used to be three statements inside BEGIN … COMMIT. Called as one prepared
-- `SELECT * FROM tessera_use_standalone(…)`, the function runs in that statement's
-- own transaction, so it is as atomic as before and costs one round trip. The row
-- stays locked by the UPDATE until the statement commits, so the delete removes
-- exactly the row whose last use this was.
CREATE FUNCTION tessera_use_standalone(
    p_tenant_id text,
    p_token_hash bytea,
    p_now timestamptz
)
RETURNS TABLE (uses_left bigint, payload text)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_left bigint;
    v_payload text;
BEGIN
    -- NULL - 1 is NULL: an unlimited ticket stays unlimited.
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
        UPDATE tenant_counters c SET live_standalone = c.live_standalone - 1
        WHERE c.tenant_id = p_tenant_id;
    END IF;
    uses_left := v_left;
    payload := v_payload;
    RETURN NEXT;
END
$$;
