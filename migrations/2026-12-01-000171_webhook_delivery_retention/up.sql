-- Finished webhook deliveries (delivered or failed) follow the event retention:
-- the maintenance pass that drops event partitions older than
-- TESSERA_EVENT_RETENTION_DAYS deletes the finished deliveries created before the
-- same cutoff, so the delivery history no longer grows without end. Pending
-- deliveries are kept until they finish, however old. Cross-tenant like the
-- partition drop (retention applies to every tenant alike); not unique, so it
-- distributes on Citus like any other index.
CREATE INDEX webhook_deliveries_finished_by_age
    ON webhook_deliveries (created_at) WHERE state <> 'pending';
