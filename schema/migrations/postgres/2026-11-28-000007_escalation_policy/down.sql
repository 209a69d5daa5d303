ALTER TABLE clinics DROP COLUMN escalation_policy;
