//! The `mail_outbox` table: mail written by the transaction that causes it, sent later by the
//! background sender of any instance ([`crate::mail::sender`]).
//!
//! A row is `waiting` until it is sent (`sent`) or given up on (`failed`: it expired unsent). A
//! sender **claims** a due row by setting a lease (`locked_until`) in one statement — on PostgreSQL
//! with `FOR UPDATE SKIP LOCKED`, so parallel senders each take a different row without waiting for
//! one another; on SQLite the statement holds the database's write lock, which is as atomic — and
//! while the lease runs no other sender takes it. A sender that dies mid-send leaves the lease to run
//! out, and the row is tried again (at least once: a crash between the server's `250 OK` and the
//! commit that records it may send a mail twice; nothing is ever lost).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::schema::mail_outbox;
use super::{portable_sql, DbConn};

/// A mail to write into the outbox.
pub struct NewMail<'a> {
    pub id: &'a str,
    /// Which mail (see [`crate::mail::Kind`]).
    pub kind: &'a str,
    pub user_id: Option<&'a str>,
    pub recipient: &'a str,
    /// What the sender composes the mail from (JSON).
    pub payload: &'a str,
    pub now: i64,
    /// A mail not sent by then is given up on (a link in it would be dead, a notice stale).
    pub expires_at: i64,
}

pub fn insert(conn: &mut DbConn, m: &NewMail<'_>) -> QueryResult<usize> {
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::id.eq(m.id),
            mail_outbox::kind.eq(m.kind),
            mail_outbox::user_id.eq(m.user_id),
            mail_outbox::recipient.eq(m.recipient),
            mail_outbox::payload.eq(m.payload),
            mail_outbox::status.eq("waiting"),
            mail_outbox::created_at.eq(m.now),
            mail_outbox::expires_at.eq(m.expires_at),
            mail_outbox::next_attempt_at.eq(m.now),
        ))
        .execute(conn)
}

/// A row claimed for sending.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// This attempt's number (1 for the first).
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Claims the most overdue waiting row that no other sender holds, for `lease_ms`, counting the
/// attempt (a sender that dies mid-send has used one); `None` when nothing is due.
pub fn claim(conn: &mut DbConn, now: i64, lease_ms: i64) -> QueryResult<Option<Claimed>> {
    // The one place the two databases differ: PostgreSQL skips rows another sender is claiming right
    // now instead of waiting for them; SQLite has a single writer at a time anyway.
    let skip_locked = match conn {
        DbConn::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        DbConn::Sqlite(_) => "",
    };
    let sql = portable_sql(
        conn,
        &format!(
            "UPDATE mail_outbox SET locked_until = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM mail_outbox \
                 WHERE status = 'waiting' AND next_attempt_at <= $1 AND locked_until <= $1 AND expires_at > $1 \
                 ORDER BY next_attempt_at LIMIT 1{skip_locked}) \
             RETURNING id, kind, recipient, payload, attempts"
        ),
    );
    let rows: Vec<Claimed> = crate::on_backend!(conn, |c| diesel::sql_query(sql)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(now + lease_ms)
        .load(c)?);
    Ok(rows.into_iter().next())
}

/// Whether any row is due (a read, so an idle sender's poll takes no write lock).
pub fn any_due(conn: &mut DbConn, now: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        mail_outbox::table
            .filter(mail_outbox::status.eq("waiting"))
            .filter(mail_outbox::next_attempt_at.le(now))
            .filter(mail_outbox::locked_until.le(now)),
    ))
    .get_result(conn)
}

/// The claimed row was sent: its payload (which may hold a link's sealed token) is emptied.
pub fn mark_sent(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::status.eq("sent"),
            mail_outbox::sent_at.eq(Some(now)),
            mail_outbox::payload.eq(""),
            mail_outbox::locked_until.eq(0),
        ))
        .execute(conn)
}

/// The claimed row's attempt failed: it waits until `next_attempt_at`, with the error kept.
pub fn reschedule(conn: &mut DbConn, id: &str, next_attempt_at: i64, error: &str) -> QueryResult<usize> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::next_attempt_at.eq(next_attempt_at),
            mail_outbox::last_error.eq(Some(error)),
            mail_outbox::locked_until.eq(0),
        ))
        .execute(conn)
}

/// Gives up on waiting rows that expired unsent (their payload emptied too); returns how many.
pub fn fail_expired(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    let sql = portable_sql(
        conn,
        "UPDATE mail_outbox SET status = 'failed', payload = '', \
         last_error = 'expired before it could be sent' || COALESCE('; last error: ' || last_error, '') \
         WHERE status = 'waiting' AND expires_at <= $1 AND locked_until <= $1",
    );
    crate::on_backend!(conn, |c| diesel::sql_query(sql).bind::<BigInt, _>(now).execute(c))
}

/// How many mails of `kind` were written for a user since `since` (sent or not).
pub fn count_recent(conn: &mut DbConn, user_id: &str, kind: &str, since: i64) -> QueryResult<i64> {
    mail_outbox::table
        .filter(mail_outbox::user_id.eq(user_id))
        .filter(mail_outbox::kind.eq(kind))
        .filter(mail_outbox::created_at.gt(since))
        .count()
        .get_result(conn)
}

/// Mails waiting to be sent (the outbox depth).
pub fn depth(conn: &mut DbConn) -> QueryResult<i64> {
    mail_outbox::table.filter(mail_outbox::status.eq("waiting")).count().get_result(conn)
}

/// A row as `dashboard mail list` shows it.
#[derive(Debug, Queryable)]
pub struct Listed {
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

/// Rows newest first, of one status or all.
pub fn list(conn: &mut DbConn, status: Option<&str>, limit: i64) -> QueryResult<Vec<Listed>> {
    let mut query = mail_outbox::table
        .select((
            mail_outbox::id,
            mail_outbox::kind,
            mail_outbox::recipient,
            mail_outbox::status,
            mail_outbox::created_at,
            mail_outbox::next_attempt_at,
            mail_outbox::attempts,
            mail_outbox::last_error,
            mail_outbox::sent_at,
        ))
        .order((mail_outbox::created_at.desc(), mail_outbox::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(mail_outbox::status.eq(status.to_owned()));
    }
    query.load(conn)
}

/// Deletes sent and failed rows older than `before`, in batches of `batch`; returns how many in this
/// batch (waiting rows are never pruned).
pub fn prune_batch(conn: &mut DbConn, before: i64, batch: i64) -> QueryResult<usize> {
    let sql = portable_sql(
        conn,
        "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox \
         WHERE status <> 'waiting' AND created_at < $1 LIMIT $2)",
    );
    crate::on_backend!(conn, |c| diesel::sql_query(sql).bind::<BigInt, _>(before).bind::<BigInt, _>(batch).execute(c))
}
