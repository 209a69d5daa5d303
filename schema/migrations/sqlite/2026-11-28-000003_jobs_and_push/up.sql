-- The durable job queue, registered devices, and push notifications with one row per attempt.

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedupe_key    TEXT UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        TIMESTAMP NOT NULL,
    locked_by     TEXT,
    locked_until  TIMESTAMP,
    last_error    TEXT,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP
);
CREATE INDEX jobs_due_idx ON jobs (status, run_at);
CREATE INDEX jobs_lease_idx ON jobs (status, locked_until);

CREATE TABLE devices (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL REFERENCES accounts (id),
    platform                TEXT NOT NULL CHECK (platform IN ('ios', 'android')),
    token                   TEXT NOT NULL UNIQUE,
    app_version             TEXT,
    locale                  TEXT,
    active                  BOOLEAN NOT NULL,
    invalid_argument_count  INTEGER NOT NULL DEFAULT 0,
    deactivated_reason      TEXT,
    created_at              TIMESTAMP NOT NULL,
    last_seen_at            TIMESTAMP NOT NULL
);
CREATE INDEX devices_account_idx ON devices (account_id);

CREATE TABLE notifications (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    device_id     TEXT NOT NULL REFERENCES devices (id),
    kind          TEXT NOT NULL,
    ref_id        TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'token_dead', 'rejected', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL,
    delivered_at  TIMESTAMP,
    opened_at     TIMESTAMP
);
CREATE INDEX notifications_account_idx ON notifications (account_id, created_at);

CREATE TABLE notification_attempts (
    id               TEXT PRIMARY KEY,
    notification_id  TEXT NOT NULL REFERENCES notifications (id),
    attempt          INTEGER NOT NULL,
    at               TIMESTAMP NOT NULL,
    outcome          TEXT NOT NULL,
    provider_status  INTEGER,
    provider_reason  TEXT,
    latency_ms       INTEGER NOT NULL
);
CREATE INDEX notification_attempts_notification_idx ON notification_attempts (notification_id, attempt);
