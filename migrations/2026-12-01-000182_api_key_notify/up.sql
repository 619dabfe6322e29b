-- Each server process caches the API keys it has resolved (issue 12); a key that is
-- deleted (or changed) must leave every process's cache at once. The trigger
-- announces it on channel `tessera_api_keys` when the deleting transaction commits
-- (NOTIFY is transactional), including deletes cascaded from a tenant. The payload
-- is empty: a process empties its whole cache on any notice (keys change rarely),
-- so nothing about the key, not even its hash, travels on the channel.
CREATE FUNCTION tessera_api_keys_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('tessera_api_keys', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed
    AFTER UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_api_keys_changed();
