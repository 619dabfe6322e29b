-- One usable ticket per subject, with expiring locks (oneActivePerSubject).
-- The unique index tickets_one_active_per_subject counts only `state = 'active'`,
-- and a locked ticket whose lock has expired reads as active (migration
-- email_lock_expiry) while its row stays 'locked'. So a ticket issued to the
-- subject while the old one was locked — the usual answer to a locked-out user —
-- and the old one once its lock ran out were two usable tickets for one subject.
--
-- Now a ticket that becomes active for a subject (inserted, or set active)
-- supersedes that subject's locked tickets in the same program: their lock loses
-- its end (`locked_until = NULL`: locked until an admin acts, and an admin who
-- re-activates one meets the unique index → 409 subject_has_active_ticket). The
-- trigger runs in the statement that made the new ticket active, under the old
-- tickets' row locks, so a redemption racing it either commits first or sees the
-- permanent lock. Each superseded ticket is versioned and gets a ticket.updated
-- event naming its successor.
-- What the trigger probes for every ticket made active with a subject (a batch of
-- a million such rows probes it a million times): only locked tickets, so tiny.
CREATE INDEX tickets_locked_by_subject ON tickets (tenant_id, program_id, exclusive_subject)
    WHERE state = 'locked' AND exclusive_subject IS NOT NULL;

CREATE FUNCTION tessera_supersede_locked_siblings() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    WITH superseded AS (
        UPDATE tickets t SET locked_until = NULL, version = t.version + 1
        WHERE t.tenant_id = NEW.tenant_id AND t.program_id = NEW.program_id
          AND t.exclusive_subject = NEW.exclusive_subject AND t.exclusive_subject IS NOT NULL
          AND t.state = 'locked' AND t.locked_until IS NOT NULL AND t.id <> NEW.id
        RETURNING t.id, t.version
    )
    INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data)
    SELECT NEW.tenant_id, tessera_new_id('evt_'), 'ticket.updated', now(), NEW.program_id, s.id,
           jsonb_build_object('state', 'locked', 'lockedUntil', NULL, 'supersededBy', NEW.id,
                              'version', s.version)
    FROM superseded s;
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_supersede_locked_siblings
    AFTER INSERT OR UPDATE OF state ON tickets
    FOR EACH ROW
    WHEN (NEW.state = 'active' AND NEW.exclusive_subject IS NOT NULL)
    EXECUTE FUNCTION tessera_supersede_locked_siblings();

-- Tickets already in that position: where the subject has an active ticket, every
-- locked one is superseded; where it has only locked ones, all but the newest.
UPDATE tickets t SET locked_until = NULL, version = t.version + 1
FROM (
    SELECT id, tenant_id,
           bool_or(state = 'active') OVER w AS has_active,
           row_number() OVER (w ORDER BY created_at DESC, id DESC) AS newest_first
    FROM tickets
    WHERE exclusive_subject IS NOT NULL AND state IN ('active', 'locked')
    WINDOW w AS (PARTITION BY tenant_id, program_id, exclusive_subject)
) ranked
WHERE t.tenant_id = ranked.tenant_id AND t.id = ranked.id
  AND t.state = 'locked' AND t.locked_until IS NOT NULL
  AND (ranked.has_active OR ranked.newest_first > 1);
