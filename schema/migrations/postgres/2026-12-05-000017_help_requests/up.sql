-- "Get help now": a patient's request for help, raising an urgent alert (rule
-- `patient_help_request`) on the same path as a safety answer. The id is the app's (a replay
-- with it returns the first answer); the note is the patient's own words for the care team,
-- never pushed or logged; the alert is the one the request went to (kept by id only: an
-- erasure may remove it).
CREATE TABLE help_requests (
    id           TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL REFERENCES accounts (id),
    clinic_id    TEXT NOT NULL REFERENCES clinics (id),
    note         TEXT,
    received_at  TIMESTAMP NOT NULL,
    alert_id     TEXT
);
CREATE INDEX help_requests_patient_idx ON help_requests (patient_id, received_at);
