-- Web Push: a browser's push subscription is a device of platform `web`. Its endpoint is the
-- device token (unique, as every token); its keys sit beside it, required for `web` and absent
-- for the native platforms.
ALTER TABLE devices DROP CONSTRAINT devices_platform_check;
ALTER TABLE devices ADD COLUMN web_p256dh TEXT;
ALTER TABLE devices ADD COLUMN web_auth TEXT;
ALTER TABLE devices ADD CONSTRAINT devices_platform_check CHECK (
    (platform IN ('ios', 'android') AND web_p256dh IS NULL AND web_auth IS NULL)
    OR (platform = 'web' AND web_p256dh IS NOT NULL AND web_auth IS NOT NULL)
);
