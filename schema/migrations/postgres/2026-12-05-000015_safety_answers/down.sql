-- Merged alerts stay merged.
DROP INDEX alerts_one_unresolved_idx;
DELETE FROM consent_records WHERE action = 'decline';
ALTER TABLE consent_records DROP CONSTRAINT consent_records_action_check;
ALTER TABLE consent_records ADD CONSTRAINT consent_records_action_check
    CHECK (action IN ('accept', 'withdraw'));
ALTER TABLE alerts DROP COLUMN patient_erased_at;
DROP INDEX alert_events_check_in_idx;
ALTER TABLE alert_events DROP COLUMN check_in_id;
DROP INDEX check_ins_patient_answers_idx;
ALTER TABLE check_ins DROP COLUMN earlier_versions;
ALTER TABLE check_ins DROP COLUMN amended_at;
ALTER TABLE check_ins DROP COLUMN answers_hash;
ALTER TABLE check_ins DROP COLUMN problems;
ALTER TABLE check_ins DROP COLUMN status;
