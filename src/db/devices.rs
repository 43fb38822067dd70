//! The `known_devices` table: the devices and networks each user has signed in from, and when last.

use diesel::prelude::*;

use super::schema::known_devices;
use super::DbConn;

/// When `user_id` last signed in from `device` on `network`, if ever (within the kept rows).
pub fn last_seen(conn: &mut DbConn, user_id: &str, device: &str, network: &str) -> QueryResult<Option<i64>> {
    // On the backend's own connection: every sign-in asks it (see `sessions::insert`).
    crate::on_backend!(conn, |c| known_devices::table
        .find((user_id, device, network))
        .select(known_devices::last_seen)
        .first(c)
        .optional())
}

/// Notes a sign-in from `device` on `network` at `now`: one upsert (the first sign-in from a pair
/// inserts it, later ones move its last-seen time), so two sign-ins at once cannot collide.
pub fn remember(conn: &mut DbConn, user_id: &str, device: &str, network: &str, now: i64) -> QueryResult<()> {
    let upsert = diesel::insert_into(known_devices::table)
        .values((
            known_devices::user_id.eq(user_id),
            known_devices::device.eq(device),
            known_devices::network.eq(network),
            known_devices::first_seen.eq(now),
            known_devices::last_seen.eq(now),
        ))
        .on_conflict((known_devices::user_id, known_devices::device, known_devices::network))
        .do_update()
        .set(known_devices::last_seen.eq(now));
    // Both backends take `ON CONFLICT … DO UPDATE`; diesel's multi-backend connection does not
    // compose it, so each runs it on its own connection.
    match conn {
        DbConn::Postgres(pg) => upsert.execute(pg)?,
        DbConn::Sqlite(sqlite) => upsert.execute(sqlite)?,
    };
    Ok(())
}

/// Deletes the rows last seen before `before` (a few per user: one statement); returns how many.
pub fn prune(conn: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::delete(known_devices::table.filter(known_devices::last_seen.lt(before))).execute(conn)
}
