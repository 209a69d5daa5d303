DELETE FROM notification_attempts WHERE notification_id IN (
    SELECT n.id FROM notifications n JOIN devices d ON d.id = n.device_id WHERE d.platform = 'web'
);
DELETE FROM notifications WHERE device_id IN (SELECT id FROM devices WHERE platform = 'web');
DELETE FROM devices WHERE platform = 'web';
ALTER TABLE devices DROP CONSTRAINT devices_platform_check;
ALTER TABLE devices DROP COLUMN web_p256dh;
ALTER TABLE devices DROP COLUMN web_auth;
ALTER TABLE devices ADD CONSTRAINT devices_platform_check CHECK (platform IN ('ios', 'android'));
