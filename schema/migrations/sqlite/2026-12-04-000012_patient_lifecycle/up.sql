-- The patient data lifecycle: versioned consent documents and each patient's acceptances and
-- withdrawals; per-clinic lifecycle settings (the consent version in force, what erasure does to
-- clinical records, retention periods); and the mark an erased patient's account keeps.
--
-- Rule for existing data: no clinic has a document yet, so every clinic's `consent_version`
-- starts NULL and its patients keep being prompted exactly as before. Once a clinic publishes a
-- document, its patients are prompted only after they accept that clinic's current version.

CREATE TABLE consent_documents (
    id            TEXT PRIMARY KEY,
    clinic_id     TEXT NOT NULL REFERENCES clinics (id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    published_by  TEXT NOT NULL REFERENCES accounts (id),
    published_at  TIMESTAMP NOT NULL,
    UNIQUE (clinic_id, version)
);

CREATE TABLE consent_records (
    id           TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL REFERENCES accounts (id),
    clinic_id    TEXT NOT NULL REFERENCES clinics (id),
    document_id  TEXT NOT NULL REFERENCES consent_documents (id),
    version      INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('accept', 'withdraw')),
    at           TIMESTAMP NOT NULL
);
CREATE INDEX consent_records_patient_idx ON consent_records (patient_id, at);

CREATE TABLE clinic_lifecycle (
    clinic_id               TEXT PRIMARY KEY REFERENCES clinics (id),
    consent_version         INTEGER,
    erasure_mode            TEXT NOT NULL DEFAULT 'delete' CHECK (erasure_mode IN ('delete', 'retain_deidentified')),
    check_in_retention_days INTEGER,
    alert_retention_days    INTEGER,
    audit_retention_days    INTEGER,
    updated_at              TIMESTAMP NOT NULL
);

ALTER TABLE accounts ADD COLUMN erased_at TIMESTAMP;
