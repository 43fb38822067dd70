//! The `users` table.

use diesel::prelude::*;

use super::schema::users;
use super::DbConn;

/// A user's role. Stored as text (`admin` / `user`), read from the database on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: i32,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    /// The authenticator app's secret, sealed ([`crate::seal`]); `None` when the app is off.
    pub totp_secret: Option<String>,
    /// The last time step an app code was accepted for (each code is accepted once).
    pub totp_last_step: Option<i64>,
    /// Counts the changes of the app (on, off, reset): a set-up form made before one is void.
    pub factor_epoch: i32,
    /// Where mail for the user goes (lowercased, unique); `None` when they have no address.
    pub email: Option<String>,
}

impl User {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::User)
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled != 0
    }

    pub fn status(&self) -> &'static str {
        if self.is_disabled() {
            "disabled"
        } else {
            "active"
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    id: &'a str,
    username: &'a str,
    password_hash: &'a str,
    role: &'a str,
    disabled: i32,
    created_at: i64,
}

/// Usernames are 1–64 characters of ASCII letters, digits, `.`, `_` and `-`, not only dots;
/// input is lowercased, so `Alice` and `alice` are one account. Every place that sets a name
/// (sign-up by an admin, first-admin setup, the command line) goes through here.
///
/// The characters are checked before lowercasing, and only ASCII is lowercased: Unicode
/// lowercasing maps some non-ASCII letters to ASCII ones (the Kelvin sign `K` to `k`). A name of
/// only dots (`.`, `..`) would be read as a dot segment in every URL that carries it, so no page
/// could manage that user.
pub fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("The username is empty.");
    }
    if name.chars().count() > 64 {
        return Err("The username is longer than 64 characters.");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err("The username may hold only letters, digits, '.', '_' and '-'.");
    }
    if name.chars().all(|c| c == '.') {
        return Err("The username must hold a letter, a digit, '_' or '-', not only dots.");
    }
    Ok(name.to_ascii_lowercase())
}

/// A new user id.
pub fn new_id() -> String {
    crate::util::random_b64(12)
}

/// Inserts a user; fails with a unique violation when the name is taken.
pub fn create(conn: &mut DbConn, username: &str, password_hash: &str, role: Role) -> QueryResult<User> {
    create_with_id(conn, &new_id(), username, password_hash, role)
}

/// [`create`] with an id chosen beforehand (to sign the user in by the same transaction).
pub fn create_with_id(
    conn: &mut DbConn,
    id: &str,
    username: &str,
    password_hash: &str,
    role: Role,
) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(NewUser {
            id,
            username,
            password_hash,
            role: role.as_str(),
            disabled: 0,
            created_at: crate::util::now_ms(),
        })
        .execute(conn)?;
    users::table.find(id).select(User::as_select()).first(conn)
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::username.eq(username)).select(User::as_select()).first(conn).optional()
}

/// [`find_by_username`] with how many passkeys the user has (whether a second step follows a right
/// password), in one statement.
pub fn find_by_username_with_passkeys(conn: &mut DbConn, username: &str) -> QueryResult<Option<(User, i64)>> {
    use super::schema::passkeys;
    let count = passkeys::table.filter(passkeys::user_id.eq(users::id)).count().single_value();
    // On the backend's own connection: every sign-in asks it (see `sessions::insert`).
    crate::on_backend!(conn, |c| users::table
        .filter(users::username.eq(username))
        .select((User::as_select(), count.assume_not_null()))
        .first(c)
        .optional())
}

pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<User>> {
    users::table.find(id).select(User::as_select()).first(conn).optional()
}

pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table.order(users::username.asc()).select(User::as_select()).load(conn)
}

pub fn set_password_hash(conn: &mut DbConn, user_id: &str, hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id)).set(users::password_hash.eq(hash)).execute(conn)
}

/// Locks one user's row for the rest of the transaction and reads it, in one statement (a no-op
/// UPDATE … RETURNING: a write, so SQLite takes its write lock and PostgreSQL the row lock before
/// anything is read); `None` when there is no such user.
pub fn lock(conn: &mut DbConn, user_id: &str) -> QueryResult<Option<User>> {
    // On the backend's own connection: RETURNING is not offered through the MultiConnection.
    crate::on_backend!(conn, |c| diesel::update(users::table.find(user_id))
        .set(users::disabled.eq(users::disabled))
        .returning(User::as_returning())
        .get_result(c)
        .optional())
}

/// Sets (or, with `None`, removes) a user's address; fails with a unique violation when another
/// user has it.
pub fn set_email(conn: &mut DbConn, user_id: &str, email: Option<&str>) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id)).set(users::email.eq(email)).execute(conn)
}

/// The user with this (normalized) address.
pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::email.eq(email)).select(User::as_select()).first(conn).optional()
}

pub fn touch_last_login(conn: &mut DbConn, user_id: &str, at: i64) -> QueryResult<usize> {
    // On the backend's own connection: a sign-in's statements stay prepared (see `sessions::insert`).
    crate::on_backend!(conn, |c| diesel::update(users::table.find(user_id))
        .set(users::last_login_at.eq(Some(at)))
        .execute(c))
}

#[cfg(test)]
mod tests {
    use super::normalize_username;

    #[test]
    fn names_are_ascii_letters_digits_dot_underscore_dash_and_not_only_dots() {
        for (raw, name) in [("Alice", "alice"), (" bob ", "bob"), ("a.b_c-d", "a.b_c-d"), ("...x", "...x"), ("_", "_")]
        {
            assert_eq!(normalize_username(raw).as_deref(), Ok(name), "{raw}");
        }
        assert_eq!(normalize_username(&"a".repeat(64)).map(|n| n.len()), Ok(64));
        for bad in [
            "",
            "  ",
            ".",
            "..",
            "...",
            "dave/disable#",
            "a b",
            "a%2e",
            "\u{212A}elvin", // the Kelvin sign lowercases to an ASCII `k`
            "émile",
            &"a".repeat(65),
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }
}
