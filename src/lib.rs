//! Dashboard: form sign-in and database-backed sliding sessions for a server-rendered dashboard.

pub mod auth;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod db;
pub mod error;
pub mod limits;
pub mod routes;
pub mod session;
pub mod startup;
pub mod telemetry;
pub mod util;
