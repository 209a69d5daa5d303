DROP INDEX alerts_clinic_opened_idx;
DROP INDEX check_ins_clinic_time_idx;
DROP TABLE bulk_exports;
DROP TABLE system_tokens;
DROP TABLE client_assertions;
DROP TABLE system_clients;
