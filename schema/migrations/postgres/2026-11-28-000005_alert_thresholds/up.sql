ALTER TABLE clinics ADD COLUMN alert_thresholds TEXT;
