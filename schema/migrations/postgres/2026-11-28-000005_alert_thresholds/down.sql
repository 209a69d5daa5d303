ALTER TABLE clinics DROP COLUMN alert_thresholds;
