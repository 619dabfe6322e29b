-- One copy of the standalone use's rules. `tessera_use_standalone` (migration
-- standalone_use_function, the one-statement use) and
-- `tessera_use_standalone_member` (migration group_commit_standalone, a member of a
-- grouped statement) were near-copies: the same conditional decrement and delete.
-- The one-statement use now calls the member function and lowers the tenant's
-- counter itself when the member removed the row, so the rules live in one place.
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
