DROP TABLE bulk_exports;
DROP TABLE system_tokens;
DROP TABLE client_assertions;
DROP TABLE system_clients;
