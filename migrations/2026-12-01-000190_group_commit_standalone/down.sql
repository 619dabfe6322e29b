DROP FUNCTION tessera_use_standalone_member(text, bytea, timestamptz);
