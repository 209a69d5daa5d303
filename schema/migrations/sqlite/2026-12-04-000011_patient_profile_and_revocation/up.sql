-- A patient's record number at their clinic (MRN), unique within the clinic.
ALTER TABLE accounts ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX accounts_clinic_external_id ON accounts (clinic_id, external_id)
 WHERE external_id IS NOT NULL;
-- A revoked invitation can no longer be accepted.
ALTER TABLE invitations ADD COLUMN revoked_at TIMESTAMP;
ALTER TABLE invitations ADD COLUMN revoked_by TEXT;
CREATE INDEX invitations_clinic_pending ON invitations (clinic_id, id)
 WHERE accepted_at IS NULL AND revoked_at IS NULL;
