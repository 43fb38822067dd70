//! The command line: `serve`, `migrate`, `user …`, `sessions …`, `events …`, `mail …`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::accounts::{self, Actor, Ending};
use crate::auth::password::hash_blocking;
use crate::config::Settings;
use crate::db::events;
use crate::db::{sessions, users, DbConn};
use crate::progress;
use crate::session::pruner;
use crate::startup::Application;
use crate::util::{count, format_ms, now_ms};

#[derive(Parser)]
#[command(name = "dashboard", version, about = "Sign-in and database-backed sessions for a server-rendered dashboard")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): migrate the database, then serve on DASHBOARD_LISTEN.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and end sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Subcommand)]
enum MailCommand {
    /// One line per mail, newest first: id, created, kind, recipient, status (waiting, sent, failed),
    /// attempts, next attempt or sent time, last error.
    List {
        #[arg(long, value_parser = ["waiting", "sent", "failed"])]
        status: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// One line per event, newest first: time, kind, user, actor, client IP, session, detail.
    List {
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::db::events::KINDS))]
        kind: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (default role `user`).
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "user"], default_value = "user")]
        role: String,
        /// The user's email address (for invitations, password resets and new-device mail).
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Set a user's email address (an empty ADDR removes it).
    SetEmail { name: String, addr: String },
    /// Print an invitation link (72 hours, single use) without sending mail: creates the user
    /// without a password, or makes a new link for one who has never signed in.
    Invite {
        name: String,
        #[arg(long, value_parser = ["admin", "user"], default_value = "user")]
        role: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a new password; ends all of that user's sessions.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Change the role; takes effect on the user's next request.
    Role {
        name: String,
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
    /// Disable a user: ends all of their sessions and blocks sign-in.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// One line per user: name, role, status, last sign-in, second factors.
    List,
    /// Remove every second factor of a user (authenticator app, recovery codes, passkeys) and end
    /// all their sessions: for someone who lost theirs.
    ResetMfa { name: String },
}

#[derive(Args)]
struct PasswordInput {
    /// Read the password from one line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// One line per live session: public id, user, created, last seen, expires, IP, user agent.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// End sessions: one by public id, all of a user's, or all.
    // Exactly one of the three, so clap's message for none lists them all.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "user", "all"])))]
    Revoke {
        // Public ids are base64url and may start with `-`; so may usernames.
        #[arg(long, allow_hyphen_values = true)]
        id: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete expired sessions now (for cron).
    Prune,
}

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
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::User(cmd) => with_conn(&settings, |conn| user(conn, &settings, cmd)),
        Command::Sessions(cmd) => with_conn(&settings, |conn| sessions_cmd(conn, &settings, cmd)),
        Command::Events(cmd) => with_conn(&settings, |conn| events_cmd(conn, cmd)),
        Command::Mail(cmd) => with_conn(&settings, |conn| mail_cmd(conn, cmd)),
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

/// A new password: one line of standard input, or typed twice without echo.
fn read_new_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        return Ok(line.strip_suffix('\r').unwrap_or(line).to_owned());
    }
    anyhow::ensure!(std::io::stdin().is_terminal(), "no terminal to prompt on; use --password-stdin");
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("Repeat it: ")?;
    anyhow::ensure!(first == second, "the two passwords do not match");
    Ok(first)
}

fn user(conn: &mut DbConn, settings: &Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let min_length = settings.password_min_length;
    match cmd {
        UserCommand::Add { name, role, email, password } => {
            let name = accounts::valid_username(&name)?;
            if users::find_by_username(conn, &name)?.is_some() {
                // Said before asking for a password that would be thrown away.
                return Err(accounts::AccountError::NameTaken(name).into());
            }
            let email = accounts::valid_email(email.as_deref().unwrap_or(""))?;
            let role = users::Role::parse(&role).unwrap_or(users::Role::User);
            let password = read_new_password(password.password_stdin)?;
            accounts::check_new_password(&password, None, &name, min_length)?;
            let hash = hash_blocking(&password)?;
            accounts::create_user_with_email(conn, &name, &hash, role, email.as_deref(), Actor::Cli)?;
            println!("created {role} `{name}`");
        }
        UserCommand::SetEmail { name, addr } => {
            let user = find_user(conn, &name)?;
            let email = accounts::valid_email(&addr)?;
            accounts::set_email(conn, &user.username, email.as_deref(), Actor::Cli)?;
            match email {
                Some(email) => println!("`{}` now has the address {email}", user.username),
                None => println!("`{}` has no address now", user.username),
            }
        }
        UserCommand::Invite { name, role, email } => {
            let name = accounts::valid_username(&name)?;
            let email = accounts::valid_email(email.as_deref().unwrap_or(""))?;
            let token = crate::util::random_b64(32);
            let link = accounts::NewLink { token_hash: crate::db::tokens::hash(&token), mail: None, now: now_ms() };
            let user = if users::find_by_username(conn, &name)?.is_some() {
                anyhow::ensure!(email.is_none(), "`{name}` exists; set its address with `dashboard user set-email`");
                accounts::reissue_invitation(conn, &name, &link, Actor::Cli)?
            } else {
                let role = users::Role::parse(&role).unwrap_or(users::Role::User);
                // A password nobody knows: the account cannot be signed in to before the invitation.
                let unusable = hash_blocking(&crate::util::random_b64(32))?;
                let invitation = accounts::NewInvitation {
                    username: &name,
                    role,
                    email: email.as_deref(),
                    unusable_hash: &unusable,
                    link,
                };
                accounts::invite_new_user(conn, &invitation, Actor::Cli)?
            };
            let token = secrecy::SecretString::from(token);
            let url = crate::mail::link_url(&public_url(settings), "/invite", &token);
            println!("invitation for `{}` (72 hours, single use): {url}", user.username);
        }
        UserCommand::Passwd { name, password } => {
            let user = find_user(conn, &name)?;
            let password = read_new_password(password.password_stdin)?;
            accounts::check_new_password(&password, None, &user.username, min_length)?;
            let hash = hash_blocking(&password)?;
            let ended = accounts::set_password(conn, &user.username, &hash, Actor::Cli)?;
            println!("password changed for `{}`; ended {}", user.username, count(ended, "session"));
        }
        UserCommand::Role { name, role } => {
            let user = find_user(conn, &name)?;
            let role = users::Role::parse(&role).unwrap_or(users::Role::User);
            accounts::set_role(conn, &user.username, role, Actor::Cli)?;
            println!("`{}` is now {role}", user.username);
        }
        UserCommand::Disable { name } => {
            let user = find_user(conn, &name)?;
            let ended = accounts::disable(conn, &user.username, Actor::Cli)?;
            println!("disabled `{}`; ended {}", user.username, count(ended, "session"));
        }
        UserCommand::Enable { name } => {
            let user = find_user(conn, &name)?;
            accounts::enable(conn, &user.username, Actor::Cli)?;
            println!("enabled `{}`", user.username);
        }
        UserCommand::List => {
            let factors = crate::db::factors::factors_by_user(conn)?;
            let rows = users::list(conn)?.into_iter().map(|u| {
                let last = u.last_login_at.map_or_else(|| "never".to_owned(), format_ms);
                let status = u.status().to_owned();
                let mfa = factors.get(&u.id).copied().unwrap_or_default().names();
                vec![u.username, u.role.to_string(), status, last, mfa]
            });
            print_rows(&["NAME", "ROLE", "STATUS", "LAST SIGN-IN", "SECOND FACTORS"], rows, "no users yet")?;
        }
        UserCommand::ResetMfa { name } => {
            let user = find_user(conn, &name)?;
            let reset = accounts::reset_second_factors(conn, &user.username, Actor::Cli)?;
            println!(
                "removed the second factors of `{}` ({}); ended {}",
                user.username,
                reset.removed.names(),
                count(reset.sessions_ended, "session")
            );
        }
    }
    Ok(())
}

fn sessions_cmd(conn: &mut DbConn, settings: &Settings, cmd: SessionsCommand) -> anyhow::Result<()> {
    match cmd {
        SessionsCommand::List { user } => {
            let user_id = match user {
                Some(name) => Some(find_user(conn, &name)?.id),
                None => None,
            };
            let rows = sessions::list_live(conn, now_ms(), user_id.as_deref())?.into_iter().map(|(s, username)| {
                vec![
                    s.id,
                    username,
                    format_ms(s.created_at),
                    format_ms(s.last_seen_at),
                    format_ms(s.idle_expires_at),
                    s.ip,
                    s.user_agent,
                ]
            });
            let header = ["ID", "USER", "CREATED", "LAST SEEN", "EXPIRES", "IP", "USER AGENT"];
            print_rows(&header, rows, "no live sessions")?;
        }
        SessionsCommand::Revoke { id, user, all } => {
            // Ending every session of a busy server is one long transaction: a spinner shows it runs.
            let spinner = progress::spinner("ending sessions");
            let ended = if let Some(id) = id {
                accounts::end_session(conn, &id, Ending::Any(Actor::Cli))?;
                1
            } else if let Some(name) = user {
                let user = find_user(conn, &name)?;
                accounts::end_user_sessions(conn, &user.username, Actor::Cli)?
            } else if all {
                accounts::end_all_sessions(conn, Actor::Cli)?
            } else {
                anyhow::bail!("say which sessions: --id ID, --user NAME or --all");
            };
            spinner.finish_and_clear();
            println!("ended {}", count(ended, "session"));
        }
        // `pruned N expired sessions` whatever N: the contract fixes this line for cron scripts. On a
        // terminal a bar shows the batches go (a million expired rows take tens of seconds); the rows
        // are counted first for its length, a count spared to cron, which sees no bar.
        SessionsCommand::Prune => {
            let total = if progress::shown() { pruner::count_expired(conn)? } else { 0 };
            let bar = progress::bar(u64::try_from(total).unwrap_or(0), "deleting expired sessions");
            let n = pruner::prune_expired_reporting(conn, pruner::PRUNE_BATCH, || {}, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            let retention =
                pruner::Retention { events: settings.event_retention, throttle_window: settings.login_lockout };
            let spinner = progress::spinner("deleting old audit events and sign-in counters");
            pruner::prune_housekeeping(conn, retention, || spinner.tick())?;
            spinner.finish_and_clear();
            println!("pruned {n} expired sessions");
        }
    }
    Ok(())
}

/// The URL users see, as printed links start with it: `DASHBOARD_PUBLIC_URL`, else the listen address.
fn public_url(settings: &Settings) -> String {
    match &settings.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => format!("http://{}", settings.listen),
    }
}

fn mail_cmd(conn: &mut DbConn, cmd: MailCommand) -> anyhow::Result<()> {
    let MailCommand::List { status, limit } = cmd;
    let rows = crate::db::outbox::list(conn, status.as_deref(), limit)?.into_iter().map(|m| {
        let when = match (m.status.as_str(), m.sent_at) {
            ("sent", Some(at)) => format_ms(at),
            ("waiting", _) => format_ms(m.next_attempt_at),
            _ => "-".to_owned(),
        };
        let error = m.last_error.unwrap_or_else(|| "-".into());
        vec![m.id, format_ms(m.created_at), m.kind, m.recipient, m.status, m.attempts.to_string(), when, error]
    });
    let header = ["ID", "CREATED", "KIND", "TO", "STATUS", "ATTEMPTS", "NEXT / SENT", "LAST ERROR"];
    print_rows(&header, rows, "no mail")
}

fn events_cmd(conn: &mut DbConn, cmd: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::List { user, kind, limit } = cmd;
    let user = user.map(|u| u.trim().to_lowercase());
    let rows = events::list(conn, user.as_deref(), kind.as_deref(), None, limit)?.into_iter().map(|e| {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![format_ms(e.at), e.kind, opt(e.username), opt(e.actor), opt(e.client_ip), opt(e.session_id), e.detail]
    });
    let header = ["TIME", "KIND", "USER", "ACTOR", "IP", "SESSION", "DETAIL"];
    print_rows(&header, rows, "no events")
}

/// Prints the rows of a list. On a terminal: a header over aligned columns, or `none` when there are
/// no rows. Piped or redirected: tab-separated rows only, no header, and nothing at all when there
/// are none, so scripts can count and split lines.
fn print_rows(header: &[&str], rows: impl Iterator<Item = Vec<String>>, none: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    write_rows(&mut stdout.lock(), terminal, header, rows, none)?;
    Ok(())
}

fn write_rows(
    out: &mut impl Write,
    terminal: bool,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    none: &str,
) -> std::io::Result<()> {
    // A tab or newline inside a value (a user agent, say) would break the one-line-per-row format.
    let clean = |v: String| v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let rows: Vec<Vec<String>> = rows.map(|row| row.into_iter().map(clean).collect()).collect();
    if !terminal {
        for row in &rows {
            writeln!(out, "{}", row.join("\t"))?;
        }
        return out.flush();
    }
    if rows.is_empty() {
        writeln!(out, "{none}")?;
        return out.flush();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            line.push_str(v);
            if i < last {
                line.extend(std::iter::repeat_n(' ', widths[i] - v.chars().count() + 2));
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::write_rows;

    fn render(terminal: bool, rows: &[&[&str]]) -> String {
        let mut out = Vec::new();
        let rows = rows.iter().map(|r| r.iter().map(|v| (*v).to_owned()).collect());
        write_rows(&mut out, terminal, &["NAME", "ROLE"], rows, "no users yet").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_terminal_gets_a_header_over_aligned_columns() {
        assert_eq!(render(true, &[&["alice", "admin"], &["bo", "user"]]), "NAME   ROLE\nalice  admin\nbo     user\n");
    }

    #[test]
    fn a_pipe_gets_tab_separated_rows_without_a_header() {
        assert_eq!(render(false, &[&["alice", "admin"], &["b\tx", "user"]]), "alice\tadmin\nb x\tuser\n");
    }

    #[test]
    fn an_empty_list_says_so_on_a_terminal_and_prints_nothing_to_a_pipe() {
        assert_eq!(render(true, &[]), "no users yet\n");
        assert_eq!(render(false, &[]), "");
    }
}
