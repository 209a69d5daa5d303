ALTER TABLE check_ins DROP COLUMN safety_alert_id;
ALTER TABLE webhook_endpoints DROP COLUMN last_failure;
ALTER TABLE webhook_endpoints DROP COLUMN failing_since;
ALTER TABLE webhook_endpoints DROP COLUMN last_success_at;
CREATE INDEX jobs_due_idx ON jobs (status, run_at);
DROP INDEX jobs_due_priority_idx;
ALTER TABLE jobs DROP COLUMN priority;
ALTER TABLE alerts DROP COLUMN reached_at;
DROP TABLE alert_deliveries;
