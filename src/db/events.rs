//! The `auth_events` table: the audit log.

use diesel::prelude::*;

use super::schema::auth_events;
use super::DbConn;

/// Kinds of event, as stored.
pub const KINDS: &[&str] = &[
    "sign_in",
    "sign_in_failed",
    "locked_out",
    "sign_out",
    "session_expired",
    "session_ended",
    "password_changed",
    "role_changed",
    "user_created",
    "user_disabled",
    "user_enabled",
    "first_admin_created",
    "new_device_sign_in",
    "email_changed",
    "invitation_sent",
    "invitation_accepted",
    "password_reset_requested",
    "password_reset",
    "second_factor_added",
    "second_factor_removed",
    "recovery_codes_created",
    "recovery_code_used",
    "second_factor_failed",
    "reauthenticated",
    "reauth_failed",
    "second_factors_reset",
    "unlocked",
    "browser_trusted",
    "trusted_browser_used",
    "trusted_browser_forgotten",
    "session_bound",
    "dbsc_refused",
];

/// What a person reads for a kind (the stored `snake_case` kind stays in attributes and filters).
pub fn label(kind: &str) -> &str {
    match kind {
        "sign_in" => "Signed in",
        "sign_in_failed" => "Sign-in failed",
        "locked_out" => "Locked out",
        "sign_out" => "Signed out",
        "session_expired" => "Session expired",
        "session_ended" => "Session ended",
        "password_changed" => "Password changed",
        "role_changed" => "Role changed",
        "user_created" => "User created",
        "user_disabled" => "User disabled",
        "user_enabled" => "User enabled",
        "first_admin_created" => "First admin created",
        "new_device_sign_in" => "New device sign-in",
        "second_factor_added" => "Second factor added",
        "second_factor_removed" => "Second factor removed",
        "recovery_codes_created" => "Recovery codes made",
        "recovery_code_used" => "Recovery code used",
        "second_factor_failed" => "Second factor failed",
        "reauthenticated" => "Identity confirmed",
        "reauth_failed" => "Identity confirmation failed",
        "second_factors_reset" => "Second factors reset",
        "unlocked" => "Lock ended",
        "browser_trusted" => "Browser trusted",
        "trusted_browser_used" => "Trusted browser used",
        "trusted_browser_forgotten" => "Trusted browser forgotten",
        "session_bound" => "Session bound to its device",
        "dbsc_refused" => "Device-bound request refused",
        "email_changed" => "Email address changed",
        "invitation_sent" => "Invitation made",
        "invitation_accepted" => "Invitation accepted",
        "password_reset_requested" => "Password reset asked for",
        "password_reset" => "Password reset",
        other => other,
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = auth_events)]
pub struct Event {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub username: Option<String>,
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub session_id: Option<String>,
    pub detail: String,
}

/// An event to record. Fields left `None` are not known where it happens.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub kind: &'static str,
    pub username: Option<String>,
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub session_id: Option<String>,
    pub detail: String,
}

impl NewEvent {
    pub fn new(kind: &'static str) -> Self {
        debug_assert!(KINDS.contains(&kind), "unknown event kind {kind}");
        NewEvent { kind, ..Default::default() }
    }
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }
    pub fn actor(mut self, name: impl Into<String>) -> Self {
        self.actor = Some(name.into());
        self
    }
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self
    }
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

pub fn record(conn: &mut DbConn, event: &NewEvent) -> QueryResult<usize> {
    let truncate = |s: &Option<String>, n: usize| s.as_ref().map(|s| s.chars().take(n).collect::<String>());
    // On the backend's own connection: every sign-in records one (see `sessions::insert`).
    crate::on_backend!(conn, |c| diesel::insert_into(auth_events::table)
        .values((
            auth_events::id.eq(crate::util::random_b64(12)),
            auth_events::at.eq(crate::util::now_ms()),
            auth_events::kind.eq(event.kind),
            auth_events::username.eq(truncate(&event.username, 64)),
            auth_events::actor.eq(truncate(&event.actor, 64)),
            auth_events::client_ip.eq(truncate(&event.client_ip, 64)),
            auth_events::session_id.eq(&event.session_id),
            auth_events::detail.eq(event.detail.chars().take(200).collect::<String>()),
        ))
        .execute(c))
}

/// Where a page of events starts: after this (at, id) in newest-first order (the same `TIME.ID`
/// link format as the session list).
pub fn parse_cursor(s: &str) -> Option<(i64, String)> {
    super::sessions::Cursor::parse(s).map(|c| (c.last_seen_at, c.id))
}

/// Events, newest first, optionally of one user and/or one kind, after a cursor, at most `limit`.
pub fn list(
    conn: &mut DbConn,
    username: Option<&str>,
    kind: Option<&str>,
    after: Option<&(i64, String)>,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let mut query = auth_events::table
        .select(Event::as_select())
        .order((auth_events::at.desc(), auth_events::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(name) = username {
        query = query.filter(auth_events::username.eq(name.to_owned()));
    }
    if let Some(kind) = kind {
        query = query.filter(auth_events::kind.eq(kind.to_owned()));
    }
    if let Some((at, id)) = after {
        query = query.filter(auth_events::at.lt(*at).or(auth_events::at.eq(*at).and(auth_events::id.lt(id.clone()))));
    }
    query.load(conn)
}

/// Milliseconds in an hour: the overview's buckets.
pub const HOUR_MS: i64 = 3_600_000;

#[derive(QueryableByName)]
struct HourCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hour: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many events of each of `kinds` happened in each hour of `hours` hours from `start`:
/// `counts[k][h]` for `kinds[k]` and the hour starting at `start + h` hours. Grouped in the database
/// over a bounded window, one range of the `(kind, at)` index per kind, so the cost follows the
/// events in the window, not the table's size. The SQL is the same on both databases (integer
/// division of BIGINTs truncates on both; only the placeholders differ, see [`super::portable_sql`]).
pub fn hourly_counts(conn: &mut DbConn, kinds: &[&str], start: i64, hours: usize) -> QueryResult<Vec<Vec<i64>>> {
    use diesel::sql_types::{Array, BigInt, Text};
    let end = start + hours as i64 * HOUR_MS;
    let mut counts = vec![vec![0; hours]; kinds.len()];
    let rows: Vec<HourCount> = match conn {
        // One text for every number of kinds: an array parameter.
        DbConn::Postgres(pg) => diesel::sql_query(
            "SELECT kind, (at - $1) / 3600000 AS hour, COUNT(*) AS n FROM auth_events \
             WHERE kind = ANY($3) AND at >= $1 AND at < $2 GROUP BY 1, 2",
        )
        .bind::<BigInt, _>(start)
        .bind::<BigInt, _>(end)
        .bind::<Array<Text>, _>(kinds)
        .load(pg)?,
        // SQLite has no arrays: one bound `?` per kind.
        DbConn::Sqlite(sqlite) => {
            let marks = vec!["?"; kinds.len()].join(", ");
            let sql = format!(
                "SELECT kind, (at - ?1) / 3600000 AS hour, COUNT(*) AS n FROM auth_events \
                 WHERE at >= ?1 AND at < ?2 AND kind IN ({marks}) GROUP BY 1, 2"
            );
            let mut query = diesel::sql_query(sql).bind::<BigInt, _>(start).bind::<BigInt, _>(end).into_boxed();
            for kind in kinds {
                query = query.bind::<Text, _>(*kind);
            }
            query.load(sqlite)?
        }
    };
    for row in rows {
        let (Some(k), Ok(h)) = (kinds.iter().position(|k| *k == row.kind), usize::try_from(row.hour)) else { continue };
        if let Some(slot) = counts[k].get_mut(h) {
            *slot = row.n;
        }
    }
    Ok(counts)
}

/// Deletes at most `batch` events older than `before`; returns how many.
pub fn prune_batch(conn: &mut DbConn, before: i64, batch: i64) -> QueryResult<usize> {
    let old = auth_events::table.filter(auth_events::at.lt(before)).select(auth_events::id).limit(batch);
    let ids: Vec<String> = old.load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(auth_events::table.filter(auth_events::id.eq_any(ids))).execute(conn)
}

/// Records an event from a request handler. Best effort: a failure to write the audit log is logged
/// as an error but does not undo or fail what the user did.
pub async fn log(pool: &super::Pool, event: NewEvent) {
    let kind = event.kind;
    if let Err(e) = super::run(pool, move |conn| Ok(record(conn, &event)?)).await {
        tracing::error!(kind, error = %e, "could not record an audit event");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_has_a_label_in_words() {
        for kind in super::KINDS {
            let label = super::label(kind);
            assert!(label != *kind && !label.contains('_'), "{kind}: {label}");
        }
    }
}
