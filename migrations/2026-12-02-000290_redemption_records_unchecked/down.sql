ALTER TABLE tickets RESET (fillfactor);
DROP TRIGGER tickets_forget_redemptions ON tickets;
DROP FUNCTION tessera_forget_redemptions();
ALTER TABLE redemptions ADD FOREIGN KEY (tenant_id, ticket_id)
    REFERENCES tickets (tenant_id, id) ON DELETE CASCADE;
