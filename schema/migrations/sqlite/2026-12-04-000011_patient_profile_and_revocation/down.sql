DROP INDEX invitations_clinic_pending;
ALTER TABLE invitations DROP COLUMN revoked_by;
ALTER TABLE invitations DROP COLUMN revoked_at;
DROP INDEX accounts_clinic_external_id;
ALTER TABLE accounts DROP COLUMN external_id;
