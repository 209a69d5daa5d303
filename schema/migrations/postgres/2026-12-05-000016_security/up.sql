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

-- Password reset codes a clinic admin (or an organisation admin) issues to an account: stored
-- hashed, single use, short-lived; a newer code replaces an unused older one.
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    code_hash   TEXT NOT NULL UNIQUE,
    issued_by   TEXT NOT NULL REFERENCES accounts (id),
    issued_at   TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);
CREATE INDEX password_resets_account_idx ON password_resets (account_id);
