DROP TABLE password_resets;

ALTER TABLE audit_events DROP CONSTRAINT audit_events_one_actor;
DELETE FROM audit_events WHERE actor_id IS NULL;
ALTER TABLE audit_events DROP COLUMN actor_client_id;
ALTER TABLE audit_events ALTER COLUMN actor_id SET NOT NULL;

DROP INDEX system_tokens_client_idx;
ALTER TABLE system_clients DROP COLUMN keys_rotated_at;
ALTER TABLE system_clients DROP COLUMN last_used_at;
