-- Web Push: a browser's push subscription is a device of platform `web`. Its endpoint is the
-- device token (unique, as every token); its keys sit beside it, required for `web` and absent
-- for the native platforms. SQLite cannot change a CHECK constraint in place: the table is
-- rebuilt the way SQLite documents (foreign keys off, one transaction, checked before commit).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE devices_new (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL REFERENCES accounts (id),
    platform                TEXT NOT NULL,
    token                   TEXT NOT NULL UNIQUE,
    app_version             TEXT,
    locale                  TEXT,
    active                  BOOLEAN NOT NULL,
    invalid_argument_count  INTEGER NOT NULL DEFAULT 0,
    deactivated_reason      TEXT,
    created_at              TIMESTAMP NOT NULL,
    last_seen_at            TIMESTAMP NOT NULL,
    web_p256dh              TEXT,
    web_auth                TEXT,
    CHECK (
        (platform IN ('ios', 'android') AND web_p256dh IS NULL AND web_auth IS NULL)
        OR (platform = 'web' AND web_p256dh IS NOT NULL AND web_auth IS NOT NULL)
    )
);
INSERT INTO devices_new (id, account_id, platform, token, app_version, locale, active,
                         invalid_argument_count, deactivated_reason, created_at, last_seen_at)
    SELECT id, account_id, platform, token, app_version, locale, active,
           invalid_argument_count, deactivated_reason, created_at, last_seen_at
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_account_idx ON devices (account_id);
COMMIT;
PRAGMA foreign_keys = ON;
