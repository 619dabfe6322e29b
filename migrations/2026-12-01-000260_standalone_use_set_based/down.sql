-- Back to the per-member function (migration group_commit_standalone) and the
-- one-statement use that calls it (migration standalone_use_delegates).
DROP INDEX api_keys_probe;
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
    v_removed boolean;
BEGIN
    SELECT m.uses_left, m.payload, m.removed INTO v_left, v_payload, v_removed
    FROM tessera_use_standalone_member(p_tenant_id, p_token_hash, p_now) m;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_removed THEN
        UPDATE tenant_counters c SET live_standalone = c.live_standalone - 1
        WHERE c.tenant_id = p_tenant_id;
    END IF;
    uses_left := v_left;
    payload := v_payload;
    RETURN NEXT;
END
$$;

DROP FUNCTION tessera_use_standalone_batch(text[], bytea[], timestamptz[], text[]);
