-- Security review.

-- System clients belong to their clinic: when each was last used, and when its keys were last
-- replaced.
ALTER TABLE system_clients ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE system_clients ADD COLUMN keys_rotated_at TIMESTAMP;
CREATE INDEX system_tokens_client_idx ON system_tokens (client_id);

-- An audit row names who acted: an account, or a system client (never the account that
-- registered the client).
ALTER TABLE audit_events ALTER COLUMN actor_id DROP NOT NULL;
ALTER TABLE audit_events ADD COLUMN actor_client_id TEXT REFERENCES system_clients (id);
ALTER TABLE audit_events ADD CONSTRAINT audit_events_one_actor
    CHECK ((actor_id IS NULL) <> (actor_client_id IS NULL));
