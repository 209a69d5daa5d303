-- Accounts, clinics, invitations, refresh-token families and the audit trail.
-- Timestamps are UTC text written by diesel (same shape as the PostgreSQL tree).

CREATE TABLE clinics (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('org_admin', 'clinic_admin', 'clinician', 'patient')),
    clinic_id      TEXT REFERENCES clinics (id),
    display_name   TEXT,
    timezone       TEXT NOT NULL,
    disabled_at    TIMESTAMP,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    CHECK ((role = 'org_admin') = (clinic_id IS NULL))
);
CREATE INDEX accounts_clinic_role_idx ON accounts (clinic_id, role, id);

CREATE TABLE invitations (
    id                   TEXT PRIMARY KEY,
    clinic_id            TEXT NOT NULL REFERENCES clinics (id),
    role                 TEXT NOT NULL CHECK (role IN ('clinic_admin', 'clinician', 'patient')),
    code_hash            TEXT NOT NULL UNIQUE,
    email                TEXT,
    created_by           TEXT NOT NULL REFERENCES accounts (id),
    created_at           TIMESTAMP NOT NULL,
    expires_at           TIMESTAMP NOT NULL,
    accepted_at          TIMESTAMP,
    accepted_account_id  TEXT REFERENCES accounts (id)
);
CREATE INDEX invitations_clinic_idx ON invitations (clinic_id, created_at);

CREATE TABLE refresh_families (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    created_at      TIMESTAMP NOT NULL,
    revoked_at      TIMESTAMP,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_account_idx ON refresh_families (account_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families (id),
    issued_at   TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    spent_at    TIMESTAMP
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          TIMESTAMP NOT NULL,
    actor_id    TEXT NOT NULL REFERENCES accounts (id),
    action      TEXT NOT NULL,
    clinic_id   TEXT,
    patient_id  TEXT,
    subject_id  TEXT,
    request_id  TEXT
);
CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, at);
CREATE INDEX audit_events_clinic_idx ON audit_events (clinic_id, at);
