//! The command line's shape (clap): every command, argument and its help.

use clap::{ArgGroup, Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dashboard",
    version,
    about = "Sign-in and database-backed sessions for a server-rendered dashboard",
    after_help = "Configuration: environment variables (see .env.example), and a .env file in the working \
                  directory when there is one (the real environment wins). DATABASE_URL picks the database: \
                  a SQLite file path (default dashboard.db, relative to the working directory, so every \
                  command run elsewhere opens another file) or postgres://user@host/db. Every command \
                  applies pending migrations first; the server logs which database it opened."
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub(super) enum Command {
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
pub(super) enum MailCommand {
    /// One line per mail, newest first: id, created, kind, recipient, status (waiting, sent, failed),
    /// attempts, next attempt or sent time, last error.
    List {
        /// Only mail in this state.
        #[arg(long, value_parser = ["waiting", "sent", "failed"])]
        status: Option<String>,
        /// At most this many lines.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
}

#[derive(Subcommand)]
pub(super) enum EventsCommand {
    /// One line per event, newest first: time, kind, user, actor, client IP, session, detail.
    List {
        /// Only events about this user (by name).
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::db::events::KINDS))]
        kind: Option<String>,
        /// At most this many lines.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
}

#[derive(Subcommand)]
pub(super) enum UserCommand {
    /// Create a user (default role `user`).
    Add {
        /// The new user's name (letters, digits, `.`, `_`, `-`; stored lower-case).
        name: String,
        /// The new user's role.
        #[arg(long, value_parser = ["admin", "user"], default_value = "user")]
        role: String,
        /// The user's email address (for invitations, password resets and new-device mail).
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Set a user's email address (an empty ADDR removes it).
    SetEmail {
        /// The user.
        name: String,
        /// The address, or "" to remove it.
        addr: String,
    },
    /// Print an invitation link (72 hours, single use) without sending mail: creates the user
    /// without a password, or makes a new link for one who has never signed in.
    Invite {
        /// The user to invite.
        name: String,
        /// The new user's role.
        #[arg(long, value_parser = ["admin", "user"], default_value = "user")]
        role: String,
        /// The new user's email address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a new password; ends all of that user's sessions.
    Passwd {
        /// The user.
        name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Change the role; takes effect on the user's next request.
    Role {
        /// The user.
        name: String,
        /// The new role.
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
    /// Disable a user: ends all of their sessions and blocks sign-in.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        name: String,
    },
    /// One line per user: name, role, status, last sign-in, second factors.
    List,
    /// Remove every second factor of a user (authenticator app, recovery codes, passkeys) and end
    /// all their sessions: for someone who lost theirs.
    ResetMfa {
        /// The user.
        name: String,
    },
    /// End the lock that failed sign-ins put on a user, and forget the failures and earlier locks
    /// (so the next lock is the shortest again).
    Unlock {
        /// The user.
        name: String,
    },
}

#[derive(Args)]
pub(super) struct PasswordInput {
    /// Read the password from one line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand)]
pub(super) enum SessionsCommand {
    /// One line per live session: public id, user, created, last seen, expires, IP, user agent.
    List {
        /// Only this user's sessions (by name).
        #[arg(long)]
        user: Option<String>,
    },
    /// End sessions: one by public id, all of a user's, or all.
    // Exactly one of the three, so clap's message for none lists them all.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "user", "all"])))]
    Revoke {
        // Public ids are base64url and may start with `-`; so may usernames.
        /// The session with this public id (as `sessions list` shows it).
        #[arg(long, allow_hyphen_values = true)]
        id: Option<String>,
        /// Every session of this user (by name).
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// Every session of every user.
        #[arg(long)]
        all: bool,
    },
    /// Delete expired sessions now (for cron).
    Prune,
}
