-- Merged alerts stay merged.
DROP INDEX alerts_one_unresolved_idx;
CREATE TABLE consent_records_old (
    id           TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL REFERENCES accounts (id),
    clinic_id    TEXT NOT NULL REFERENCES clinics (id),
    document_id  TEXT NOT NULL REFERENCES consent_documents (id),
    version      INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('accept', 'withdraw')),
    at           TIMESTAMP NOT NULL
);
INSERT INTO consent_records_old (id, patient_id, clinic_id, document_id, version, action, at)
SELECT id, patient_id, clinic_id, document_id, version, action, at FROM consent_records
WHERE action <> 'decline';
DROP TABLE consent_records;
ALTER TABLE consent_records_old RENAME TO consent_records;
CREATE INDEX consent_records_patient_idx ON consent_records (patient_id, at);
ALTER TABLE alerts DROP COLUMN patient_erased_at;
DROP INDEX alert_events_check_in_idx;
ALTER TABLE alert_events DROP COLUMN check_in_id;
DROP INDEX check_ins_patient_answers_idx;
ALTER TABLE check_ins DROP COLUMN earlier_versions;
ALTER TABLE check_ins DROP COLUMN amended_at;
ALTER TABLE check_ins DROP COLUMN answers_hash;
ALTER TABLE check_ins DROP COLUMN problems;
ALTER TABLE check_ins DROP COLUMN status;
