DROP TABLE events;
DROP TABLE tenant_counters;
DROP TABLE standalone_tickets;
DROP TABLE tickets;
DROP TABLE programs;
DROP TABLE api_keys;
DROP TABLE tenants;
