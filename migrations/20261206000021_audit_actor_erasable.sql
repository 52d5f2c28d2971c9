-- An audit event outlives the person who acted: when a person's row is deleted (the owner's
-- erasure at the end of retention; the demo's reset), their events stay, with `actor_id`
-- cleared, instead of blocking the deletion. The application never deletes users.
ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_actor_id_fkey,
    ADD CONSTRAINT audit_events_actor_id_fkey FOREIGN KEY (actor_id)
        REFERENCES users (id) ON DELETE SET NULL;
