-- The safety path: alerts that re-open after acknowledgement, name the check-in that raised them
-- and when it was answered and received, are marked when nobody can be reached, and sort by
-- severity; check-ins whose device time was corrected or that arrived late; clinics that replace
-- their crisis resources; staff working hours.

ALTER TABLE alerts ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN new_signal_since_ack BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alerts ADD COLUMN unreachable_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN signal_completed_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN signal_received_at TIMESTAMP;
UPDATE alerts SET severity_rank = CASE severity
    WHEN 'urgent' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END;
UPDATE alerts SET signal_received_at = last_signal_at;
UPDATE alerts SET signal_completed_at =
    (SELECT c.completed_at FROM check_ins c WHERE c.id = alerts.check_in_id);
CREATE INDEX alerts_inbox_idx ON alerts (clinic_id, severity_rank, last_signal_at);

ALTER TABLE check_ins ADD COLUMN device_completed_at TIMESTAMP;
ALTER TABLE check_ins ADD COLUMN timing TEXT NOT NULL DEFAULT 'on_time'
    CHECK (timing IN ('on_time', 'clock_ahead', 'late'));
CREATE INDEX check_ins_patient_received_idx ON check_ins (patient_id, received_at);
-- A questionnaire's baseline (the lowest recent score) is read in score order, so its cost does
-- not grow with the patient's history.
CREATE INDEX check_ins_patient_instrument_total_idx ON check_ins (patient_id, instrument, total, completed_at);

ALTER TABLE clinics ADD COLUMN crisis_resources TEXT;

ALTER TABLE accounts ADD COLUMN working_hours TEXT;
