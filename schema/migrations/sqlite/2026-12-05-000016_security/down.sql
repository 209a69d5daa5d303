DROP TABLE password_resets;

CREATE TABLE audit_events_old (
    id          TEXT PRIMARY KEY,
    at          TIMESTAMP NOT NULL,
    actor_id    TEXT NOT NULL REFERENCES accounts (id),
    action      TEXT NOT NULL,
    clinic_id   TEXT,
    patient_id  TEXT,
    subject_id  TEXT,
    request_id  TEXT
);
INSERT INTO audit_events_old
    SELECT id, at, actor_id, action, clinic_id, patient_id, subject_id, request_id
    FROM audit_events WHERE actor_id IS NOT NULL;
DROP TABLE audit_events;
ALTER TABLE audit_events_old RENAME TO audit_events;
CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, at);
CREATE INDEX audit_events_clinic_idx ON audit_events (clinic_id, at);

DROP INDEX system_tokens_client_idx;
ALTER TABLE system_clients DROP COLUMN keys_rotated_at;
ALTER TABLE system_clients DROP COLUMN last_used_at;
