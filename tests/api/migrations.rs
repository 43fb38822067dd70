use dashboard::db;
use dashboard::db::users::{self, Role};

use crate::both_databases;
use crate::helpers::*;

both_databases!(reverting_and_running_the_migrations_again_leaves_a_working_schema);

async fn reverting_and_running_the_migrations_again_leaves_a_working_schema(kind: DbKind) {
    let test_db = TestDb::new(kind);
    let pool = test_db.pool(); // applies the migrations
    let hash = password_hash().to_owned();
    db::run(&pool, move |conn| {
        users::create(conn, "before", &hash, Role::User)?;
        let reverted = db::revert_all(conn)?;
        assert!(reverted >= 2, "every migration has a down.sql");
        assert!(users::count(conn).is_err(), "down.sql dropped the tables");
        assert_eq!(db::migrate(conn)?, reverted);
        assert_eq!(db::migrate(conn)?, 0, "nothing left to apply");
        assert_eq!(users::count(conn)?, 0);
        users::create(conn, "after", &hash, Role::Admin)?;
        assert_eq!(users::count(conn)?, 1);
        Ok(())
    })
    .await
    .unwrap();
}
