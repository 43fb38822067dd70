//! Integration tests: each spawns the real app on port 0 with a fresh database. Every database-facing
//! test runs on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.

mod hasher;
mod helpers;
mod smtp;
mod soft_authenticator;

mod account;
mod admin;
mod authentication;
mod browser;
mod browser_mfa;
mod browser_passkeys;
mod cap;
mod cli;
mod cloud;
mod dbsc;
mod deploy;
mod expiry;
mod limits;
mod login;
mod mail;
mod metrics;
mod mfa_policy;
mod migrations;
mod names;
mod notices;
mod outage;
mod overview;
mod pages;
mod passkeys;
mod races;
mod reauth;
mod routes;
mod second_factors;
mod security;
mod sessions;
mod setup;
mod signin;
mod spelling;
mod trusted;
mod two_step;
