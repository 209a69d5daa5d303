-- Check-ins (client-generated ids, scored on the server), treatment sessions, and the clinic
-- settings that decide which crisis resources patients are shown.

ALTER TABLE clinics ADD COLUMN country TEXT;
ALTER TABLE clinics ADD COLUMN crisis_phone TEXT;

CREATE TABLE check_ins (
    id                  TEXT PRIMARY KEY,
    patient_id          TEXT NOT NULL REFERENCES accounts (id),
    clinic_id           TEXT NOT NULL REFERENCES clinics (id),
    instrument          TEXT NOT NULL,
    instrument_version  INTEGER NOT NULL,
    answers             TEXT NOT NULL,
    total               INTEGER,
    severity            TEXT,
    item9               INTEGER,
    completed_at        TIMESTAMP NOT NULL,
    received_at         TIMESTAMP NOT NULL,
    prompt_id           TEXT,
    content_hash        TEXT NOT NULL
);
CREATE INDEX check_ins_patient_time_idx ON check_ins (patient_id, completed_at, id);
CREATE INDEX check_ins_patient_instrument_idx ON check_ins (patient_id, instrument, completed_at);

CREATE TABLE treatment_sessions (
    id                TEXT PRIMARY KEY,
    patient_id        TEXT NOT NULL REFERENCES accounts (id),
    clinic_id         TEXT NOT NULL REFERENCES clinics (id),
    modality          TEXT NOT NULL CHECK (modality IN ('iv_infusion', 'intramuscular', 'intranasal_esketamine', 'oral_lozenge')),
    status            TEXT NOT NULL CHECK (status IN ('scheduled', 'completed', 'cancelled')),
    scheduled_at      TIMESTAMP NOT NULL,
    observations      TEXT,
    created_by        TEXT NOT NULL REFERENCES accounts (id),
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX treatment_sessions_patient_idx ON treatment_sessions (patient_id, scheduled_at, id);
