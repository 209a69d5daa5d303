-- Security review.

-- System clients belong to their clinic: when each was last used, and when its keys were last
-- replaced.
ALTER TABLE system_clients ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE system_clients ADD COLUMN keys_rotated_at TIMESTAMP;
CREATE INDEX system_tokens_client_idx ON system_tokens (client_id);

-- An audit row names who acted: an account, or a system client (never the account that
-- registered the client). SQLite cannot relax NOT NULL in place: the table is rebuilt.
CREATE TABLE audit_events_new (
    id               TEXT PRIMARY KEY,
    at               TIMESTAMP NOT NULL,
    actor_id         TEXT REFERENCES accounts (id),
    action           TEXT NOT NULL,
    clinic_id        TEXT,
    patient_id       TEXT,
    subject_id       TEXT,
    request_id       TEXT,
    actor_client_id  TEXT REFERENCES system_clients (id),
    CHECK ((actor_id IS NULL) <> (actor_client_id IS NULL))
);
INSERT INTO audit_events_new (id, at, actor_id, action, clinic_id, patient_id, subject_id, request_id)
    SELECT id, at, actor_id, action, clinic_id, patient_id, subject_id, request_id FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, at);
CREATE INDEX audit_events_clinic_idx ON audit_events (clinic_id, at);

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
