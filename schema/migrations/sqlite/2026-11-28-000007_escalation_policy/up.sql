ALTER TABLE clinics ADD COLUMN escalation_policy TEXT;
