//! The command line: `serve`, `migrate`, `user …`, `sessions …`.

mod args;
mod commands;
mod rows;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::accounts;
use crate::config::Settings;
use crate::db::{users, DbConn};
use crate::progress;
use crate::startup::Application;
use crate::util::count;
use args::{Cli, Command};

/// Parses the command line and runs it; errors go to standard error with exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(settings.log_format);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::User(cmd) => with_conn(&settings, |conn| commands::user(conn, &settings, cmd)),
        Command::Sessions(cmd) => with_conn(&settings, |conn| commands::sessions(conn, &settings, cmd)),
        Command::Events(cmd) => with_conn(&settings, |conn| commands::events(conn, cmd)),
        Command::Mail(cmd) => with_conn(&settings, |conn| commands::mail(conn, cmd)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let (listen, metrics_listen) = (settings.listen, settings.metrics_listen);
        let app = Application::build(settings).await.map_err(|e| explain_listen_error(e, listen))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}:{}", listen.ip(), app.port())?;
        if let (Some(port), Some(addr)) = (app.metrics_port(), metrics_listen) {
            writeln!(out, "metrics on http://{}:{port}/metrics", addr.ip())?;
        }
        if let Some(url) = app.setup_url() {
            writeln!(out, "no users yet: create the first admin at {url}")?;
        }
        out.flush()?;
        drop(out);
        app.run_until_stopped().await?;
        Ok(())
    })
}

/// A listener that cannot bind names the address and the variable that chose it (the bare error is
/// only `Address already in use (os error 98)`).
fn explain_listen_error(e: anyhow::Error, listen: std::net::SocketAddr) -> anyhow::Error {
    use std::io::ErrorKind;
    let why = match e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
        Some(ErrorKind::AddrInUse) => "the address is already in use (is another server running there?)",
        Some(ErrorKind::AddrNotAvailable) => "the address is not one of this machine's",
        _ => return e,
    };
    anyhow::anyhow!(
        "cannot listen on {listen}: {why}; set DASHBOARD_LISTEN to another address (port 0 picks a free one)"
    )
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = crate::db::connect_one(&settings.database)?;
    // A migration that rewrites a large table can take minutes.
    let spinner = progress::spinner("applying migrations");
    let applied = crate::db::migrate(&mut conn);
    spinner.finish_and_clear();
    let applied = applied?;
    println!("applied {}", count(applied, "migration"));
    Ok(())
}

fn with_conn(settings: &Settings, f: impl FnOnce(&mut DbConn) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut conn = crate::db::connect_one(&settings.database)?;
    crate::db::migrate(&mut conn)?;
    f(&mut conn)
}

fn find_user(conn: &mut DbConn, raw: &str) -> anyhow::Result<users::User> {
    let name = accounts::valid_username(raw)?;
    users::find_by_username(conn, &name)?.ok_or_else(|| accounts::AccountError::NoSuchUser(name).into())
}
