ALTER TABLE accounts DROP COLUMN erased_at;
DROP TABLE clinic_lifecycle;
DROP TABLE consent_records;
DROP TABLE consent_documents;
