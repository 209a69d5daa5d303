DROP TABLE notification_attempts;
DROP TABLE notifications;
DROP TABLE devices;
DROP TABLE jobs;
