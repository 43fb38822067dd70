//! The `passkeys` table: what the account pages list and delete, and what registering and checking
//! a passkey (WebAuthn, [`crate::auth::passkeys`]) reads and writes.

use diesel::prelude::*;

use super::schema::passkeys;
use super::users::User;
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

/// A stored passkey with its credential (the public key and signature counter, as JSON).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The passkey whose credential id (base64url) is `credential_id`, if any.
pub fn find_by_credential_id(conn: &mut DbConn, credential_id: &str) -> QueryResult<Option<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()
}

/// [`find_by_credential_id`] with the passkey's user.
pub fn find_with_owner(conn: &mut DbConn, credential_id: &str) -> QueryResult<Option<(PasskeyRow, User)>> {
    let Some(row) = find_by_credential_id(conn, credential_id)? else { return Ok(None) };
    Ok(super::users::find_by_id(conn, &row.user_id)?.map(|user| (row, user)))
}

/// Every passkey of a user, with its credential, oldest first.
pub fn credentials_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)
}

/// Whether the user already has a passkey named `name`.
pub fn name_taken(conn: &mut DbConn, user_id: &str, name: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        passkeys::table.filter(passkeys::user_id.eq(user_id)).filter(passkeys::name.eq(name)),
    ))
    .get_result(conn)
}

/// Inserts a passkey; a unique violation when its credential id is already stored.
pub fn insert(conn: &mut DbConn, row: &PasskeyRow) -> QueryResult<usize> {
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq(&row.id),
            passkeys::user_id.eq(&row.user_id),
            passkeys::credential_id.eq(&row.credential_id),
            passkeys::name.eq(&row.name),
            passkeys::credential.eq(&row.credential),
            passkeys::created_at.eq(row.created_at),
            passkeys::last_used_at.eq(row.last_used_at),
        ))
        .execute(conn)
}

/// Records a use of passkey `id` of `user_id`: its credential becomes `updated` (the new signature
/// counter) **only if** it is still `verified`, the one the signature was checked against (compare and
/// swap: a passkey deleted, or used by a parallel request, meanwhile is not overwritten). 0 rows then.
pub fn record_use(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    verified: &str,
    updated: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        passkeys::table.find(id).filter(passkeys::user_id.eq(user_id)).filter(passkeys::credential.eq(verified)),
    )
    .set((passkeys::credential.eq(updated), passkeys::last_used_at.eq(now)))
    .execute(conn)
}
