use dashboard::db::users::{self, Role};

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    the_first_admin_is_created_through_the_printed_setup_url,
    setup_refuses_a_wrong_token_and_weak_passwords,
    setup_is_closed_once_a_user_exists,
    there_is_no_default_account,
);

fn token_of(url: &str) -> String {
    url.split("token=").nth(1).expect("setup url has a token").to_owned()
}

async fn the_first_admin_is_created_through_the_printed_setup_url(kind: DbKind) {
    let app = spawn_app(kind).await;
    let url = app.setup_url.clone().expect("no users: a setup URL");
    // The default public URL names the loopback listener `localhost`, where browsers offer passkeys.
    let public = app.address.replace("127.0.0.1", "localhost");
    assert!(url.starts_with(&format!("{public}/setup?token=")), "{url}");
    let path = link_path(&url);
    let token = token_of(&url);

    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);
    let res = app
        .me()
        .submit(
            &path,
            "/setup",
            &[("token", &token), ("username", "root"), ("password", PASSWORD), ("confirm_password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains(r#"<dd id="role">admin</dd>"#), "signed in as the new admin");

    let admin = app.with_db(|c| users::find_by_username(c, "root")).await.unwrap();
    assert_eq!(admin.role(), Role::Admin);
    assert!(admin.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    // The link works once.
    assert_eq!(app.browser().get(&path).await.status(), 404);
    // The audit log has the creation and the first admin's sign-in, with the session it made.
    let events = app.with_db(|c| dashboard::db::events::list(c, Some("root"), None, None, 10)).await;
    // (One transaction: the same millisecond, so sorted rather than in time order.)
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["first_admin_created", "sign_in"]);
    let session: String = {
        use dashboard::db::schema::sessions;
        use diesel::prelude::*;
        app.with_db(|c| sessions::table.select(sessions::id).first(c)).await
    };
    let sign_in = events.iter().find(|e| e.kind == "sign_in").unwrap();
    assert_eq!(sign_in.session_id.as_deref(), Some(session.as_str()));
}

async fn setup_refuses_a_wrong_token_and_weak_passwords(kind: DbKind) {
    let app = spawn_app(kind).await;
    let url = app.setup_url.clone().unwrap();
    let path = link_path(&url);
    let token = token_of(&url);

    assert_eq!(app.get("/setup?token=wrong").await.status(), 403);
    assert_eq!(app.get("/setup").await.status(), 403);
    let res = app
        .me()
        .submit(
            &path,
            "/setup",
            &[("token", "wrong"), ("username", "root"), ("password", PASSWORD), ("confirm_password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);

    for (password, confirm, why) in [
        ("short", "short", "at least 15 characters"),
        ("root root root root", "root root root root", "must not contain the username"),
        (PASSWORD, "something else entirely", "do not match"),
    ] {
        let res = app
            .me()
            .submit(
                &path,
                "/setup",
                &[("token", &token), ("username", "root"), ("password", password), ("confirm_password", confirm)],
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.text().await.unwrap().contains(why), "{why}");
    }
    assert_eq!(app.with_db(users::count).await, 0);
}

async fn setup_is_closed_once_a_user_exists(kind: DbKind) {
    let db = TestDb::new(kind);
    let first = spawn_app_with(db.clone(), |_| {}).await;
    let url = first.setup_url.clone().unwrap();
    first.create_user("alice", Role::User).await;
    let path = link_path(&url);
    assert_eq!(first.get(&path).await.status(), 404);

    let again = spawn_app_with(db, |_| {}).await;
    assert!(again.setup_url.is_none(), "no setup URL once a user exists");
}

async fn there_is_no_default_account(kind: DbKind) {
    let app = spawn_app(kind).await;
    for (user, password) in [("admin", "admin"), ("admin", "password"), ("root", "root")] {
        assert_eq!(app.browser().login(user, password).await.status(), 401);
    }
    assert_eq!(app.with_db(users::count).await, 0);
}
