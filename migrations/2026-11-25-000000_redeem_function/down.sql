DROP FUNCTION tessera_redeem(text, bytea, text, timestamptz, text, text, text);
