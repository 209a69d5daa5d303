PRAGMA foreign_keys = OFF;
BEGIN;
DELETE FROM notification_attempts WHERE notification_id IN (
    SELECT n.id FROM notifications n JOIN devices d ON d.id = n.device_id WHERE d.platform = 'web'
);
DELETE FROM notifications WHERE device_id IN (SELECT id FROM devices WHERE platform = 'web');
DELETE FROM devices WHERE platform = 'web';
CREATE TABLE devices_old (
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
INSERT INTO devices_old (id, account_id, platform, token, app_version, locale, active,
                         invalid_argument_count, deactivated_reason, created_at, last_seen_at)
    SELECT id, account_id, platform, token, app_version, locale, active,
           invalid_argument_count, deactivated_reason, created_at, last_seen_at
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_old RENAME TO devices;
CREATE INDEX devices_account_idx ON devices (account_id);
COMMIT;
PRAGMA foreign_keys = ON;
