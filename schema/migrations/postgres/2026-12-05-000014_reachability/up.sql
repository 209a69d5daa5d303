-- Reachability from outcomes: what each channel actually did for each alert step (a push accepted
-- by APNs or FCM, a webhook answered 2xx, an email accepted by the SMTP server count; held,
-- logged-only, failed and retrying deliveries do not), when an alert first reached a person,
-- job priorities (safety work first), and each webhook endpoint's health.

CREATE TABLE alert_deliveries (
    id          TEXT PRIMARY KEY,
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    round       INTEGER NOT NULL,
    escalation  INTEGER NOT NULL,
    -- The tier told, or -1 for those told outside the tiers (the organisation's admins as the
    -- last resort, an assignee).
    tier        INTEGER NOT NULL,
    audience    TEXT NOT NULL CHECK (audience IN ('tier', 'last_resort', 'assignee')),
    channel     TEXT NOT NULL CHECK (channel IN ('push', 'webhook', 'email')),
    -- The account told (push, email) or the webhook endpoint.
    recipient   TEXT NOT NULL,
    -- The notification (push) or the delivery job's dedupe key (webhook, email).
    ref_id      TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN
                  ('queued', 'held', 'counted', 'retrying', 'failed', 'not_sent')),
    detail      TEXT,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX alert_deliveries_step_idx ON alert_deliveries (alert_id, round, escalation);

ALTER TABLE alerts ADD COLUMN reached_at TIMESTAMP;
-- Alerts from before: whoever acknowledged or resolved one was reached.
UPDATE alerts SET reached_at = acknowledged_at WHERE acknowledged_at IS NOT NULL;

ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_due_priority_idx ON jobs (status, priority, run_at);
DROP INDEX jobs_due_idx;

ALTER TABLE webhook_endpoints ADD COLUMN last_success_at TIMESTAMP;
ALTER TABLE webhook_endpoints ADD COLUMN failing_since TIMESTAMP;
ALTER TABLE webhook_endpoints ADD COLUMN last_failure TEXT;

ALTER TABLE check_ins ADD COLUMN safety_alert_id TEXT;
