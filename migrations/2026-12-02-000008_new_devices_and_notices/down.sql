ALTER TABLE sessions DROP COLUMN new_device_notices;
DROP TABLE known_devices;
