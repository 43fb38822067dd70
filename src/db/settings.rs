//! The `app_settings` table: values every instance on this database shares.

use diesel::prelude::*;

use super::schema::app_settings;
use super::DbConn;

pub fn get(conn: &mut DbConn, name: &str) -> QueryResult<Option<String>> {
    app_settings::table.find(name).select(app_settings::value).first(conn).optional()
}

/// Stores `value` unless a value is already there, and returns the stored one. Instances starting
/// together all end up with the first value written.
pub fn get_or_insert(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<String> {
    if let Some(existing) = get(conn, name)? {
        return Ok(existing);
    }
    let inserted = diesel::insert_into(app_settings::table)
        .values((app_settings::name.eq(name), app_settings::value.eq(value)))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        // Another instance won the race; read its value below.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(e) => return Err(e),
    }
    get(conn, name)?.ok_or(diesel::result::Error::NotFound)
}

/// Deletes `name` only if it still holds `value`; true when this call deleted it. Used to spend the
/// one-time setup token exactly once.
pub fn take(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<bool> {
    let n =
        diesel::delete(app_settings::table.filter(app_settings::name.eq(name)).filter(app_settings::value.eq(value)))
            .execute(conn)?;
    Ok(n == 1)
}
