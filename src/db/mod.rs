//! The database: one connection type for SQLite and PostgreSQL, the pool, and migrations.
//!
//! Queries are written once against [`DbConn`] (diesel's `MultiConnection`); the few statements whose
//! SQL differs between the two databases match on the variant, and live next to their callers.

pub mod ceremonies;
pub mod devices;
pub mod events;
pub mod factors;
pub mod outbox;
pub mod passkeys;
pub mod pending;
// Exactly as `diesel print-schema` prints it (`.ci/run` compares), which rustfmt would rewrap.
#[rustfmt::skip]
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod throttle;
pub mod tokens;
pub mod trusted;
pub mod users;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self as r2d2, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{Backend, DatabaseUrl};

/// A connection to either database; which one is decided by `DATABASE_URL` at run time.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Runs `$body` with `$c` bound to the inner, backend-specific connection. For hot-path queries:
/// there diesel's own connection uses its prepared-statement cache, while a query through the
/// `MultiConnection` wrapper is rebuilt as SQL text and prepared again on every call.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// The migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The connection pool shared by the server, the pruner and the commands, with what it knows of its
/// database's health (kept here, not in process globals, so two apps in one process — tests — never
/// share an outage or a limit). Dereferences to the r2d2 pool (`pool.get()`).
#[derive(Clone)]
pub struct Pool {
    connections: r2d2::Pool<Manager>,
    health: std::sync::Arc<Health>,
}

impl std::ops::Deref for Pool {
    type Target = r2d2::Pool<Manager>;

    fn deref(&self) -> &Self::Target {
        &self.connections
    }
}

/// Opens connections of the configured kind. (diesel's own manager would try PostgreSQL and then
/// fall back to SQLite for any string, turning a mistyped PostgreSQL URL into a stray file.)
#[derive(Debug)]
pub struct Manager {
    database: DatabaseUrl,
}

impl Manager {
    fn new(database: &DatabaseUrl) -> Self {
        Self { database: database.clone() }
    }
}

/// The health of `pool`'s database: where a caller that reaches the database without the pool (the
/// session lookup threads) reports outages, so one outage is one warning whoever met it.
pub fn health(pool: &Pool) -> std::sync::Arc<Health> {
    pool.health.clone()
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match self.database.backend {
            Backend::Postgres => diesel::PgConnection::establish(&self.database.url)
                .map(DbConn::Postgres)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(&self.database.url).map_err(|e| {
                    diesel::r2d2::Error::ConnectionError(explain_sqlite_open_error(&self.database.url, e))
                })?;
                // busy_timeout first: the pragmas after it may themselves wait for a lock.
                // synchronous=NORMAL is durable in WAL mode except for the last commits on power loss.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// SQLite says only `unable to open database file`; say which file, and why when it is plain.
fn explain_sqlite_open_error(path: &str, e: diesel::ConnectionError) -> diesel::ConnectionError {
    let file = std::path::Path::new(path);
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let why = match dir {
        Some(dir) if !dir.is_dir() => format!("the directory `{}` does not exist", dir.display()),
        _ if file.is_dir() => "it is a directory".to_owned(),
        _ => e.to_string(),
    };
    diesel::ConnectionError::BadConnection(format!("cannot open the SQLite database `{path}` (DATABASE_URL): {why}"))
}

/// One connection, without a pool: for commands, which run one thing and exit. (A pool's background
/// threads may still be inside libpq when the process exits, and crash it there.)
pub fn connect_one(database: &DatabaseUrl) -> anyhow::Result<DbConn> {
    r2d2::ManageConnection::connect(&Manager::new(database)).map_err(|e| match database.backend {
        Backend::Sqlite => anyhow::anyhow!("{e}"),
        Backend::Postgres => explain_postgres_error(database, &e),
    })
}

/// libpq's message alone names neither the variable nor what kind of failure it is; a refused password
/// is not a network problem and waiting for the pool to time out would only hide it.
fn explain_postgres_error(database: &DatabaseUrl, e: &diesel::r2d2::Error) -> anyhow::Error {
    let raw = e.to_string();
    let what = database.describe();
    let detail = raw.trim().lines().next().unwrap_or_default().trim_start_matches("connection to server").trim();
    if raw.contains("password authentication failed") || raw.contains("authentication") {
        anyhow::anyhow!(
            "cannot sign in to the {what}: authentication failed ({detail}); check the user name and password in DATABASE_URL"
        )
    } else {
        anyhow::anyhow!("cannot connect to the {what} (DATABASE_URL): {detail}")
    }
}

/// Builds the pool. For SQLite it also turns on WAL (persistent in the file), so readers never wait
/// for the writer.
pub fn connect(database: &DatabaseUrl) -> anyhow::Result<Pool> {
    let max_size = match database.backend {
        // Writes serialise on the file lock anyway; a few connections serve the concurrent reads.
        Backend::Sqlite => 8,
        Backend::Postgres => 16,
    };
    let manager = Manager::new(database);
    // One connection first, on both databases: a refusal (a wrong password, a missing file) is then one
    // clear error, not the pool's retries logged one by one and ending in a timeout.
    let mut first = connect_one(database)?;
    if database.backend == Backend::Sqlite {
        first.batch_execute("PRAGMA journal_mode = WAL;")?;
    }
    drop(first);
    let connections = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        // A broken connection shows as a query error (and `has_broken`); pinging on every checkout
        // would double the queries of every page.
        .test_on_check_out(false)
        // When the database is gone, a request waits at most this long for a connection before its
        // 503 page (the rule: within 5 s).
        .connection_timeout(Duration::from_secs(3))
        .build(manager)
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    Ok(Pool { connections, health: std::sync::Arc::new(Health::new()) })
}

/// Applies pending migrations; returns how many were applied. On PostgreSQL an advisory lock makes
/// instances that start together take turns instead of racing on the same DDL.
pub fn migrate(conn: &mut DbConn) -> anyhow::Result<usize> {
    let err = |e| anyhow::anyhow!("migration failed: {e}");
    match conn {
        DbConn::Postgres(pg) => {
            pg.batch_execute("SELECT pg_advisory_lock(7245100093)")?;
            let result = pg.run_pending_migrations(MIGRATIONS).map(|v| v.len()).map_err(err);
            pg.batch_execute("SELECT pg_advisory_unlock(7245100093)")?;
            result
        }
        DbConn::Sqlite(sqlite) => sqlite.run_pending_migrations(MIGRATIONS).map(|v| v.len()).map_err(err),
    }
}

/// Reverts every applied migration (used by tests that check the `down.sql` files); returns how many.
pub fn revert_all(conn: &mut DbConn) -> anyhow::Result<usize> {
    let err = |e| anyhow::anyhow!("revert failed: {e}");
    match conn {
        DbConn::Postgres(pg) => pg.revert_all_migrations(MIGRATIONS).map(|v| v.len()).map_err(err),
        DbConn::Sqlite(sqlite) => sqlite.revert_all_migrations(MIGRATIONS).map(|v| v.len()).map_err(err),
    }
}

/// The database could not be reached (no connection, or the connection broke during the call): the
/// request gets a `503` page, not a `500`.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable: {0}")]
pub struct Unavailable(pub String);

/// How many database calls of one pool may be on the blocking pool at once. Without a bound, a burst
/// of requests parks dozens of threads on the connection pool's lock; with it they wait as cheap
/// async tasks.
const CALLS_IN_FLIGHT: usize = 8;

/// Whether a pool's database is known to be unreachable right now (one warning when an outage
/// starts, one line when it ends, not one per request), and the bound on its calls in flight.
#[derive(Debug)]
pub struct Health {
    down: std::sync::atomic::AtomicBool,
    calls: tokio::sync::Semaphore,
}

impl Health {
    fn new() -> Self {
        Self { down: std::sync::atomic::AtomicBool::new(false), calls: tokio::sync::Semaphore::new(CALLS_IN_FLIGHT) }
    }

    /// Notes that the database did not answer; returns the error for the request.
    pub fn unavailable(&self, cause: impl std::fmt::Display) -> Unavailable {
        crate::metrics::database_error("unavailable");
        if !self.down.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(error = %cause, "the database is unavailable; answering 503 until it is back");
        }
        Unavailable(cause.to_string())
    }

    /// Notes that the database answered (cheap: one atomic load when nothing changed).
    pub fn available(&self) {
        if self.down.load(std::sync::atomic::Ordering::Relaxed)
            && self.down.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("the database is available again");
        }
    }

    /// Whether an outage is being reported now.
    pub fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs `f` with a pooled connection on the blocking thread pool, so neither the checkout nor the
/// query ever blocks an async worker.
pub async fn run<T, F>(pool: &Pool, f: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConn) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let _permit = pool.health.calls.acquire().await?;
    let (pool, health) = (pool.connections.clone(), pool.health.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| anyhow::Error::new(health.unavailable(format!("no connection: {e}"))))?;
        match f(&mut conn) {
            Ok(v) => {
                health.available();
                Ok(v)
            }
            // A connection that broke during the call means the database went away.
            Err(e) if conn.is_broken() => Err(anyhow::Error::new(health.unavailable(format!("{e:#}")))),
            Err(e) => {
                if e.downcast_ref::<diesel::result::Error>().is_some() {
                    crate::metrics::database_error("query");
                }
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("database task failed: {e}"))?
}

impl crate::metrics::LiveSessions for Pool {
    async fn count_live(&self, now_ms: i64) -> anyhow::Result<i64> {
        run(self, move |conn| Ok(sessions::count_live(conn, now_ms)?)).await
    }

    async fn outbox_depth(&self) -> anyhow::Result<i64> {
        run(self, |conn| Ok(outbox::depth(conn)?)).await
    }
}

/// `result`, with a unique violation (a name or key that is taken) turned into `taken()`.
pub fn on_unique_violation<T, E: From<diesel::result::Error>>(
    result: QueryResult<T>,
    taken: impl FnOnce() -> E,
) -> Result<T, E> {
    match result {
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(taken())
        }
        other => other.map_err(E::from),
    }
}

/// `SELECT 1`, for `/readyz`.
pub fn ping(conn: &mut DbConn) -> anyhow::Result<()> {
    conn.ping()?;
    Ok(())
}

/// Raw SQL written once with PostgreSQL's numbered placeholders (`$1`, `$2`, …), spelled for the
/// connection's database: SQLite's `?1`, `?2`, … mean the same (numbered, reusable), so one text
/// serves both. Only for the few statements diesel's portable DSL cannot express.
pub fn portable_sql(conn: &DbConn, sql: &str) -> String {
    match conn {
        DbConn::Postgres(_) => sql.to_owned(),
        DbConn::Sqlite(_) => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two apps in one process (as in the test binary) each have their pool: an outage one of them
    /// meets, and its calls in flight, are not the other's.
    #[test]
    fn each_pool_keeps_its_own_health_and_call_limit() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            let url = dir.path().join(name).to_string_lossy().into_owned();
            connect(&DatabaseUrl::parse(&url).unwrap()).unwrap()
        };
        let (a, b) = (open("a.db"), open("b.db"));
        let _ = health(&a).unavailable("gone");
        assert!(health(&a).is_down());
        assert!(!health(&b).is_down(), "another pool's outage is not this one's");
        let a_health = health(&a);
        let held = a_health.calls.try_acquire_many(CALLS_IN_FLIGHT as u32).unwrap();
        assert_eq!(health(&b).calls.available_permits(), CALLS_IN_FLIGHT, "another pool's calls are not counted here");
        drop(held);
        health(&a).available();
        assert!(!health(&a).is_down());
    }
}
