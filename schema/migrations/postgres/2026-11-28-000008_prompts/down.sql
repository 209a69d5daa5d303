DROP TABLE prompts;
DROP TABLE patient_schedules;
ALTER TABLE clinics DROP COLUMN care_plan;
