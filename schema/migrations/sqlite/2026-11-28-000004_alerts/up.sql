-- Alerts for the care team, their history, and who is on call.

ALTER TABLE accounts ADD COLUMN on_call BOOLEAN NOT NULL DEFAULT 0;

CREATE TABLE alerts (
    id                TEXT PRIMARY KEY,
    clinic_id         TEXT NOT NULL REFERENCES clinics (id),
    patient_id        TEXT NOT NULL REFERENCES accounts (id),
    rule              TEXT NOT NULL,
    severity          TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'urgent')),
    status            TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    explanation       TEXT NOT NULL,
    inputs            TEXT NOT NULL,
    check_in_id       TEXT,
    signal_count      INTEGER NOT NULL,
    tier              INTEGER NOT NULL,
    escalations       INTEGER NOT NULL,
    opened_at         TIMESTAMP NOT NULL,
    last_signal_at    TIMESTAMP NOT NULL,
    ack_deadline      TIMESTAMP NOT NULL,
    acknowledged_at   TIMESTAMP,
    acknowledged_by   TEXT REFERENCES accounts (id),
    assigned_to       TEXT REFERENCES accounts (id),
    resolved_at       TIMESTAMP,
    resolved_by       TEXT REFERENCES accounts (id),
    resolution_note   TEXT
);
CREATE INDEX alerts_clinic_status_idx ON alerts (clinic_id, status, opened_at);
CREATE INDEX alerts_patient_rule_idx ON alerts (patient_id, rule, status);

CREATE TABLE alert_events (
    id         TEXT PRIMARY KEY,
    alert_id   TEXT NOT NULL REFERENCES alerts (id),
    at         TIMESTAMP NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT REFERENCES accounts (id),
    detail     TEXT NOT NULL
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, at);
