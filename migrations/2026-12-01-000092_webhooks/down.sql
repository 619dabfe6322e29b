DROP TRIGGER events_webhook_outbox ON events;
DROP FUNCTION tessera_webhook_outbox();
DROP FUNCTION tessera_new_id(text);
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
