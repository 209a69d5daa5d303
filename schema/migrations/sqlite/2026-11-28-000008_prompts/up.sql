-- Prompt scheduling: each patient's check-in window, quiet hours and care-plan override; the
-- clinic's default plan; and the materialised prompts with their lifecycle.

ALTER TABLE clinics ADD COLUMN care_plan TEXT;

CREATE TABLE patient_schedules (
    patient_id     TEXT PRIMARY KEY REFERENCES accounts (id),
    clinic_id      TEXT NOT NULL REFERENCES clinics (id),
    window_start   TEXT NOT NULL,
    window_end     TEXT NOT NULL,
    quiet_start    TEXT NOT NULL,
    quiet_end      TEXT NOT NULL,
    care_plan      TEXT,
    planned_until  TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX patient_schedules_planned_idx ON patient_schedules (planned_until);

INSERT INTO patient_schedules
    (patient_id, clinic_id, window_start, window_end, quiet_start, quiet_end, care_plan,
     planned_until, updated_at)
SELECT id, clinic_id, '09:00', '11:00', '21:00', '08:00', NULL, created_at, created_at
FROM accounts
WHERE role = 'patient' AND clinic_id IS NOT NULL;

CREATE TABLE prompts (
    id            TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL REFERENCES accounts (id),
    clinic_id     TEXT NOT NULL REFERENCES clinics (id),
    slot          TEXT NOT NULL,
    rule          TEXT NOT NULL,
    instrument    TEXT NOT NULL,
    session_id    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('scheduled', 'sent', 'reminded', 'completed', 'expired', 'cancelled')),
    local_time    TEXT NOT NULL,
    due_at        TIMESTAMP NOT NULL,
    remind_at     TIMESTAMP,
    expires_at    TIMESTAMP NOT NULL,
    sent_at       TIMESTAMP,
    reminded_at   TIMESTAMP,
    closed_at     TIMESTAMP,
    check_in_id   TEXT,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
-- One live prompt per patient and slot: regenerating can never duplicate one.
CREATE UNIQUE INDEX prompts_slot_idx ON prompts (patient_id, slot) WHERE status <> 'cancelled';
CREATE INDEX prompts_patient_idx ON prompts (patient_id, due_at);
CREATE INDEX prompts_due_idx ON prompts (due_at) WHERE status = 'scheduled';
CREATE INDEX prompts_remind_idx ON prompts (remind_at) WHERE status = 'sent';
CREATE INDEX prompts_expiry_idx ON prompts (expires_at) WHERE status IN ('scheduled', 'sent', 'reminded');
