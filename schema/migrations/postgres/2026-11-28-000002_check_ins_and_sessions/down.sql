DROP TABLE treatment_sessions;
DROP TABLE check_ins;
ALTER TABLE clinics DROP COLUMN crisis_phone;
ALTER TABLE clinics DROP COLUMN country;
