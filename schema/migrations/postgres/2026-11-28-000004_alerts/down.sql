DROP TABLE alert_events;
DROP TABLE alerts;
ALTER TABLE accounts DROP COLUMN on_call;
