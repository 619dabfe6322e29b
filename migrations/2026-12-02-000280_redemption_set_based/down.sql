DROP FUNCTION tessera_redeem_batch(text[], bytea[], text[], timestamptz[], text[], text[], text[], text[], text[], text[]);
