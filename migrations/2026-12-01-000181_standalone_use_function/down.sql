DROP FUNCTION tessera_use_standalone(text, bytea, timestamptz);
