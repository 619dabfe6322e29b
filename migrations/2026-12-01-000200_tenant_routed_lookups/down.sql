-- Back to tenant-less unique indexes. Fails (and changes nothing) if two tenants
-- hold the same key or link hash, which tenant-routed secrets make possible only
-- by chance (2^-256).
ALTER TABLE tickets DROP CONSTRAINT tickets_link_hash_unique;
ALTER TABLE tickets ADD CONSTRAINT tickets_link_hash_unique UNIQUE (link_hash);
DROP TABLE legacy_link_directory;

ALTER TABLE api_keys DROP CONSTRAINT api_keys_key_hash_unique;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_hash_unique UNIQUE (key_hash);
DROP TABLE legacy_api_key_directory;

ALTER TABLE programs ADD CONSTRAINT programs_id_unique UNIQUE (id);
DROP TABLE program_directory;
