-- Restores the one-statement use of migration standalone_use_function.
CREATE OR REPLACE FUNCTION tessera_use_standalone(
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
