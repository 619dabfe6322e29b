-- The deployment's root key, wrapped (XChaCha20-Poly1305) under a key derived
-- from the master key; every hashing, signing and sealing key is derived from the
-- root key. Rotating the master key re-wraps this one row, so nothing issued
-- changes. One row: the CHECK keeps it so.
CREATE TABLE key_envelope (
    id         smallint    PRIMARY KEY CHECK (id = 1),
    envelope   bytea       NOT NULL,
    updated_at timestamptz NOT NULL
);
COMMENT ON TABLE key_envelope IS
    'reference table: the one wrapped root key of the whole deployment, read by every process at start; it belongs to no tenant';
