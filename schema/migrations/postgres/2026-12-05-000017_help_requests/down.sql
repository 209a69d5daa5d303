DROP TABLE help_requests;
