-- SMART Backend Services: system clients a clinic admin registers with their public keys (JWKS),
-- the one-time `jti` of each client assertion they have used (kept until the assertion expires),
-- and the short-lived access tokens issued to them (stored hashed).
CREATE TABLE system_clients (
    id           TEXT PRIMARY KEY,
    clinic_id    TEXT NOT NULL REFERENCES clinics (id),
    name         TEXT NOT NULL,
    jwks         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    disabled_at  TIMESTAMP
);
CREATE INDEX system_clients_clinic_idx ON system_clients (clinic_id);

CREATE TABLE client_assertions (
    client_id   TEXT NOT NULL REFERENCES system_clients (id),
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE TABLE system_tokens (
    token_hash  TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES system_clients (id),
    clinic_id   TEXT NOT NULL REFERENCES clinics (id),
    scope       TEXT NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);
CREATE INDEX system_tokens_expires_idx ON system_tokens (expires_at);

-- FHIR Bulk Data exports: one row per kick-off; the job writes ndjson files under the data
-- directory and fills `output`; files and row expire at `expires_at`.
CREATE TABLE bulk_exports (
    id            TEXT PRIMARY KEY,
    clinic_id     TEXT NOT NULL REFERENCES clinics (id),
    requested_by  TEXT NOT NULL,
    request       TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    types         TEXT NOT NULL,
    since         TIMESTAMP,
    status        TEXT NOT NULL,
    done_types    INTEGER NOT NULL,
    output        TEXT,
    created_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    expires_at    TIMESTAMP
);
CREATE INDEX bulk_exports_clinic_idx ON bulk_exports (clinic_id);

-- FHIR search and export page through a clinic's check-ins and alerts newest first.
CREATE INDEX check_ins_clinic_time_idx ON check_ins (clinic_id, completed_at, id);
CREATE INDEX alerts_clinic_opened_idx ON alerts (clinic_id, opened_at, id);
