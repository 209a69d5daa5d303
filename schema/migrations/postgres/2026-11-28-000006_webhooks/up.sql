-- Clinics' signed webhook endpoints (their EHR or paging tool). The secret signs every delivery;
-- after a rotation the previous secret also signs until it lapses.
CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    clinic_id             TEXT NOT NULL REFERENCES clinics (id),
    url                   TEXT NOT NULL,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_expires_at   TIMESTAMP,
    active                BOOLEAN NOT NULL,
    created_at            TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_clinic_idx ON webhook_endpoints (clinic_id);
