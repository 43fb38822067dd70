DROP TABLE trusted_browsers;
