-- Superseded tickets keep their permanent lock (their old end is not kept).
DROP TRIGGER tickets_supersede_locked_siblings ON tickets;
DROP FUNCTION tessera_supersede_locked_siblings();
DROP INDEX tickets_locked_by_subject;
