DROP TABLE audit_events;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE invitations;
DROP TABLE accounts;
DROP TABLE clinics;
