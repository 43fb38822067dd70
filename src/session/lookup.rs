//! The per-request session lookup, on dedicated threads that answer many requests per wake-up.
//!
//! Every signed-in request reads its session row. Done through the blocking pool, each read cost two
//! thread hand-offs (worker → pool thread → worker) and a pool checkout, and under load those context
//! switches took more CPU than the query. Here requests queue their token hash on a channel; a
//! lookup thread drains whatever has queued, answers the whole batch with its own connection, and
//! wakes each waiting request. Under load a wake-up serves several requests (about 8 on average at
//! 64 connections): on PostgreSQL in one round trip (`token_hash = ANY($1)`), on SQLite as point
//! reads of a cached prepared statement in one read transaction. The async workers still never
//! block on the database: they only push to a channel and await the answer.
//!
//! Writes (sliding the expiry, deleting an expired row) stay on the pool; they are rare by design
//! (coalesced to one per session per minute at most).
//!
//! On SQLite a read first tries the worker's own read-only connection, inline: a point read of a
//! cached statement costs less than the hand-off to the lookup thread and back (callgrind: the hop
//! was about 11,000 instructions of a signed-in page's 140,000). It cannot wait on a lock: in WAL
//! mode readers never wait for the writer, and its `busy_timeout` is 0, so in the rare moments
//! SQLite would make a reader wait (the WAL being reset or recovered) it answers `SQLITE_BUSY` at
//! once and the read goes to the lookup thread as before. Any error does the same (and drops the
//! inline connection, opened again at the next request), so the lookup thread keeps its say on
//! whether the database is available.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::config::{Backend, DatabaseUrl};
use crate::db::sessions::{self, LiveRow};
use crate::db::{self, DbConn};

/// The most requests answered by one query.
const MAX_BATCH: usize = 128;
/// After a failed connection attempt, lookups fail fast for this long instead of each waiting on a
/// connect timeout.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How many times the idle lookup thread yields before it sleeps on the queue.
const SPINS_BEFORE_SLEEP: usize = 16;

type Found = Option<LiveRow>;

struct Job {
    token_hash: String,
    reply: tokio::sync::oneshot::Sender<Result<Found, String>>,
}

/// A handle to the lookup threads. Cloned into every worker; the threads end when the last handle is
/// dropped (when the server stops).
#[derive(Clone)]
pub struct SessionLookup {
    jobs: mpsc::Sender<Job>,
    /// The pool's record of the database's health, where failed lookups are reported.
    health: Arc<db::Health>,
    /// SQLite: the database each worker reads inline first (see the module's documentation).
    inline: Option<Arc<DatabaseUrl>>,
}

thread_local! {
    /// This worker thread's inline SQLite connections, one per database (tests run several servers
    /// in one process); `None` after an error, until it is opened again.
    static INLINE: std::cell::RefCell<Vec<(Arc<DatabaseUrl>, Option<DbConn>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The read on this thread's own connection to `database`; `None` when it could not be done at
/// once (no connection, a lock, an error): then the lookup thread answers.
fn find_inline(database: &Arc<DatabaseUrl>, token_hash: &str) -> Option<Found> {
    INLINE.with(|inline| {
        let mut inline = inline.try_borrow_mut().ok()?;
        let at = match inline.iter().position(|(db, _)| Arc::ptr_eq(db, database)) {
            Some(at) => at,
            None => {
                inline.push((database.clone(), None));
                inline.len() - 1
            }
        };
        let slot = &mut inline[at].1;
        if slot.is_none() {
            *slot = open_inline(database).ok();
        }
        let conn = slot.as_mut()?;
        match sessions::find_by_token_hashes(conn, &[token_hash]) {
            Ok(mut rows) => Some(rows.pop()),
            Err(e) => {
                tracing::debug!(error = %e, "inline session read refused; asking the lookup thread");
                *slot = None;
                None
            }
        }
    })
}

/// A read-only connection that never waits for a lock (`busy_timeout` 0).
fn open_inline(database: &DatabaseUrl) -> anyhow::Result<DbConn> {
    let mut conn = db::connect_one(database)?;
    conn.batch_execute("PRAGMA busy_timeout = 0; PRAGMA query_only = ON;")?;
    Ok(conn)
}

impl SessionLookup {
    /// Starts the lookup threads for `database`. Each connects on first use (and again after an error).
    ///
    /// SQLite: one thread; its reads never wait, so a second would only compete for the CPU.
    /// PostgreSQL: two, taking batches from one queue in turn, so one batch is being gathered and
    /// sent while the other waits for its round trip (with one, a profile showed the CPUs idle 6 % of
    /// the time under load, waiting on round trips).
    pub fn start(database: &DatabaseUrl, health: Arc<db::Health>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let threads = match database.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        for _ in 0..threads {
            let (queue, database) = (queue.clone(), database.clone());
            std::thread::Builder::new().name("session-lookup".into()).spawn(move || serve(&queue, &database))?;
        }
        let inline = (database.backend == Backend::Sqlite).then(|| Arc::new(database.clone()));
        Ok(Self { jobs, health, inline })
    }

    /// The live or expired session a token hash names, with its user's name, role and status;
    /// `None` when there is no such row.
    pub async fn find(&self, token_hash: String) -> anyhow::Result<Found> {
        if let Some(found) = self.inline.as_ref().and_then(|database| find_inline(database, &token_hash)) {
            crate::metrics::lookup_batch(1); // a read inline is a batch of one
            self.health.available();
            return Ok(found);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { token_hash, reply })
            .map_err(|_| anyhow::anyhow!("the session lookup thread has stopped"))?;
        let found = answer
            .await
            .map_err(|_| anyhow::anyhow!("the session lookup thread has stopped"))?
            .map_err(|e| anyhow::Error::new(self.health.unavailable(format!("session lookup failed: {e}"))))?;
        self.health.available();
        Ok(found)
    }
}

fn serve(queue: &Mutex<mpsc::Receiver<Job>>, database: &DatabaseUrl) {
    let mut conn = Reconnecting { database, conn: None, failed_at: None };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // The queue is held only while a batch is gathered, not while it is answered.
            let Ok(queue) = queue.lock() else { return };
            let Some(first) = next_job(&queue) else { return };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // A request whose client went away no longer waits for its answer.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // Several requests of one browser may share a batch, and a token: sorted, they sit together,
        // the token is read once, and each of them gets the row.
        batch.sort_unstable_by(|a, b| a.token_hash.cmp(&b.token_hash));
        let mut hashes: Vec<&str> = batch.iter().map(|job| job.token_hash.as_str()).collect();
        hashes.dedup();
        crate::metrics::lookup_batch(batch.len());
        match conn.find(&hashes) {
            Ok(mut rows) => {
                let mut jobs = batch.drain(..).peekable();
                while let Some(job) = jobs.next() {
                    let shared = jobs.peek().is_some_and(|next| next.token_hash == job.token_hash);
                    let found = rows.iter().position(|row| row.token_hash == job.token_hash).map(|i| {
                        if shared {
                            rows[i].clone()
                        } else {
                            rows.swap_remove(i)
                        }
                    });
                    let _ = job.reply.send(Ok(found));
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The lookup thread's connection, opened on first use and opened again after an error.
struct Reconnecting<'a> {
    database: &'a DatabaseUrl,
    conn: Option<DbConn>,
    failed_at: Option<Instant>,
}

impl Reconnecting<'_> {
    /// Runs the lookup; after an error (a restarted database server, a dropped connection) it tries
    /// once more on a fresh connection, so the requests of that batch do not fail for it.
    fn find(&mut self, hashes: &[&str]) -> Result<Vec<LiveRow>, String> {
        let had_connection = self.conn.is_some();
        match self.attempt(hashes) {
            Err(e) if had_connection => {
                tracing::warn!(error = %e, "session lookup failed; retrying on a new connection");
                self.attempt(hashes)
            }
            result => result,
        }
    }

    /// One try; a failed query drops the connection, so the next try opens a new one.
    fn attempt(&mut self, hashes: &[&str]) -> Result<Vec<LiveRow>, String> {
        let rows = sessions::find_by_token_hashes(self.connection()?, hashes);
        rows.map_err(|e| {
            self.conn = None;
            format!("session lookup failed: {e}")
        })
    }

    fn connection(&mut self) -> Result<&mut DbConn, String> {
        if self.conn.is_none() {
            if self.failed_at.is_some_and(|at| at.elapsed() < RECONNECT_AFTER) {
                return Err("no database connection (retrying shortly)".into());
            }
            match open(self.database) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.failed_at = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session lookup: cannot connect to the database");
                    self.failed_at = Some(Instant::now());
                    return Err(format!("cannot connect to the database: {e}"));
                }
            }
        }
        self.conn.as_mut().ok_or_else(|| "no database connection".to_owned())
    }
}

/// Waits for the next lookup. Under load the next one is usually a few microseconds away: yielding
/// the CPU a few times before sleeping spares each sender a futex wake-up of this thread (which
/// cost more CPU than the query). `None` once every handle is dropped.
fn next_job(queue: &mpsc::Receiver<Job>) -> Option<Job> {
    for _ in 0..SPINS_BEFORE_SLEEP {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    queue.recv().ok()
}

/// The lookup thread's own connection. On SQLite it is read-only: it can never take the write lock,
/// and in WAL mode its reads never wait for a writer.
fn open(database: &DatabaseUrl) -> anyhow::Result<DbConn> {
    let mut conn = db::connect_one(database)?;
    if let DbConn::Sqlite(c) = &mut conn {
        c.batch_execute("PRAGMA query_only = ON;")?;
    }
    Ok(conn)
}
