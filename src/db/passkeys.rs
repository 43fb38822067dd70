//! The `passkeys` table: what the account pages list and delete. (Registering and checking
//! passkeys is the WebAuthn code's.)

use diesel::prelude::*;

use super::schema::passkeys;
use super::DbConn;

/// A passkey as the pages show it (not its credential).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeySummary {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A user's passkeys, oldest first.
pub fn list_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<PasskeySummary>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeySummary::as_select())
        .load(conn)
}

/// Deletes the passkey `id` of `user_id` (another user's passkey is not touched): its name when
/// it was deleted.
pub fn delete_own(conn: &mut DbConn, user_id: &str, id: &str) -> QueryResult<Option<String>> {
    diesel::delete(passkeys::table.find(id).filter(passkeys::user_id.eq(user_id)))
        .returning(passkeys::name)
        .get_result(conn)
        .optional()
}

pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}
