DROP FUNCTION tessera_refuse(text, bytea, text, timestamptz, text, bytea, timestamptz[], jsonb, integer, text, text, text[], bigint);
DROP FUNCTION tessera_refusal_reason(programs, tickets, timestamptz, text, bigint, bigint);
DROP FUNCTION tessera_count_failures(text[], bigint);
