//! What each `user …`, `sessions …` and `events …` command does.

use std::io::{BufRead, IsTerminal};

use super::args::{EventsCommand, MailCommand, SessionsCommand, UserCommand};
use super::find_user;
use super::rows::print_rows;
use crate::accounts::{self, Actor, Ending};
use crate::auth::password::hash_blocking;
use crate::config::Settings;
use crate::db::{events as audit, sessions as live, users, DbConn};
use crate::progress;
use crate::session::pruner;
use crate::util::{count, format_ms, now_ms};

/// A new password: one line of standard input, or typed twice without echo.
fn read_new_password(from_stdin: bool, username: &str, min_length: usize) -> anyhow::Result<String> {
    let check = |password: &str| accounts::check_new_password(password, None, username, min_length);
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let password = line.strip_suffix('\r').unwrap_or(line).to_owned();
        check(&password)?;
        return Ok(password);
    }
    anyhow::ensure!(std::io::stdin().is_terminal(), "no terminal to prompt on; use --password-stdin");
    // On a terminal a refused password is asked for again: a person typing one should not have to
    // start the whole command over (a script, reading standard input, gets the error and the exit code).
    loop {
        let first = rpassword::prompt_password("New password: ")?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        let refusal = if first != second {
            "the two passwords do not match".to_owned()
        } else {
            match check(&first) {
                Ok(()) => return Ok(first),
                Err(e) => e.to_string(),
            }
        };
        eprintln!("{refusal}; try again (Ctrl-C to stop)");
    }
}

pub(super) fn user(conn: &mut DbConn, settings: &Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let min_length = settings.sign_in.password_min_length;
    match cmd {
        UserCommand::Add { name, role, email, password } => {
            let name = accounts::valid_username(&name)?;
            if users::find_by_username(conn, &name)?.is_some() {
                // Said before asking for a password that would be thrown away.
                return Err(accounts::AccountError::NameTaken(name).into());
            }
            let email = accounts::valid_email(email.as_deref().unwrap_or(""))?;
            let role = users::Role::parse(&role).unwrap_or(users::Role::User);
            let password = read_new_password(password.password_stdin, &name, min_length)?;
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
        UserCommand::Invite { name, role, email } => invite(conn, settings, &name, &role, email.as_deref())?,
        UserCommand::Passwd { name, password } => {
            let user = find_user(conn, &name)?;
            let password = read_new_password(password.password_stdin, &user.username, min_length)?;
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
            // Which database the list comes from, for a person reading it (an empty list from the wrong
            // file reads as "everyone is gone"); on standard error, so scripted output stays the table.
            if std::io::stderr().is_terminal() {
                eprintln!("users in the {}", settings.database.describe());
            }
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
        UserCommand::Unlock { name } => {
            let user = find_user(conn, &name)?;
            match accounts::unlock(conn, &user.username, Actor::Cli, crate::util::now_ms())? {
                true => println!("ended the lock on `{}`", user.username),
                false => println!("`{}` was not locked; its failed sign-ins are forgotten", user.username),
            }
        }
    }
    Ok(())
}

pub(super) fn sessions(conn: &mut DbConn, settings: &Settings, cmd: SessionsCommand) -> anyhow::Result<()> {
    match cmd {
        SessionsCommand::List { user } => {
            let user_id = match user {
                Some(name) => Some(find_user(conn, &name)?.id),
                None => None,
            };
            let rows = live::list_live(conn, now_ms(), user_id.as_deref())?.into_iter().map(|(s, username)| {
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
                pruner::Retention { events: settings.event_retention, throttle_window: settings.sign_in.lockout };
            let spinner = progress::spinner("deleting old audit events and sign-in counters");
            pruner::prune_housekeeping(conn, retention, || spinner.tick())?;
            spinner.finish_and_clear();
            println!("pruned {n} expired sessions");
        }
    }
    Ok(())
}

pub(super) fn events(conn: &mut DbConn, cmd: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::List { user, kind, limit } = cmd;
    let user = user.map(|u| u.trim().to_lowercase());
    let rows = audit::list(conn, user.as_deref(), kind.as_deref(), None, limit)?.into_iter().map(|e| {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![format_ms(e.at), e.kind, opt(e.username), opt(e.actor), opt(e.client_ip), opt(e.session_id), e.detail]
    });
    let header = ["TIME", "KIND", "USER", "ACTOR", "IP", "SESSION", "DETAIL"];
    print_rows(&header, rows, "no events")
}

/// `user invite`: a new account without a password (or a new link for one never signed in to),
/// and its invitation link printed instead of mailed.
fn invite(conn: &mut DbConn, settings: &Settings, name: &str, role: &str, email: Option<&str>) -> anyhow::Result<()> {
    let name = accounts::valid_username(name)?;
    let email = accounts::valid_email(email.unwrap_or(""))?;
    let token = crate::util::random_b64(32);
    let link = accounts::NewLink { token_hash: crate::db::tokens::hash(&token), mail: None, now: now_ms() };
    let user = if users::find_by_username(conn, &name)?.is_some() {
        anyhow::ensure!(email.is_none(), "`{name}` exists; set its address with `dashboard user set-email`");
        accounts::reissue_invitation(conn, &name, &link, Actor::Cli)?
    } else {
        let role = users::Role::parse(role).unwrap_or(users::Role::User);
        // A password nobody knows: the account cannot be signed in to before the invitation.
        let unusable = hash_blocking(&crate::util::random_b64(32))?;
        let invitation =
            accounts::NewInvitation { username: &name, role, email: email.as_deref(), unusable_hash: &unusable, link };
        accounts::invite_new_user(conn, &invitation, Actor::Cli)?
    };
    let token = secrecy::SecretString::from(token);
    let url = crate::mail::link_url(&settings.public_url_for(settings.listen), "/invite", &token);
    println!("invitation for `{}` (72 hours, single use): {url}", user.username);
    Ok(())
}

pub(super) fn mail(conn: &mut DbConn, cmd: MailCommand) -> anyhow::Result<()> {
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
