//! Dashboard: form sign-in and database-backed sliding sessions for a server-rendered dashboard.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod db;
pub mod error;
pub mod hold;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod progress;
pub mod routes;
pub mod routing;
pub mod seal;
pub mod security_headers;
pub mod session;
pub mod signin;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod urls;
pub mod user_agent;
pub mod util;
