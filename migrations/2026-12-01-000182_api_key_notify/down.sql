DROP TRIGGER api_keys_changed ON api_keys;
DROP FUNCTION tessera_api_keys_changed();
