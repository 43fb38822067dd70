use std::time::Duration;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use dashboard::db::users::Role;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    user_commands_manage_users_and_fail_clearly,
    the_last_active_admin_can_be_neither_demoted_nor_disabled,
    user_passwd_and_disable_end_the_users_sessions,
    sessions_commands_list_revoke_and_prune,
    a_session_id_starting_with_a_dash_can_be_revoked,
    migrate_applies_pending_migrations,
    serve_prints_where_it_listens_and_logs_sign_ins_without_secrets,
    lists_have_a_header_on_a_terminal_and_say_when_they_are_empty,
    prune_shows_progress_on_a_terminal_only_and_prints_the_same_line_either_way,
);

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real binary against `db`, in an empty directory (so no stray `.env` is read).
pub fn dashboard(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dashboard"));
    cmd.args(args)
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run dashboard");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the real binary with its standard output on a terminal (a pseudo-terminal we read back).
fn dashboard_on_terminal(db: &TestDb, args: &[&str]) -> String {
    dashboard_with_terminal(db, args, Terminal::Stdout).0
}

/// Which output of the command goes to the terminal.
#[derive(PartialEq)]
enum Terminal {
    Stdout,
    Stderr,
}

/// Runs the real binary with one output on a pseudo-terminal: (what the terminal got, what the
/// other output's pipe got).
fn dashboard_with_terminal(db: &TestDb, args: &[&str], on: Terminal) -> (String, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new file descriptors, which we then own.
    let rc = unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors that nothing else owns.
    let (mut master, slave) = unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dashboard"));
    cmd.args(args).current_dir(dir.path()).env("DATABASE_URL", &db.url).env("RUST_LOG", "warn").stdin(Stdio::null());
    let out = match on {
        Terminal::Stdout => cmd.stdout(slave).stderr(Stdio::piped()).output().unwrap(),
        Terminal::Stderr => cmd.stderr(slave).stdout(Stdio::piped()).output().unwrap(),
    };
    // The Command holds our copy of the terminal's end: it must go for the read below to end.
    drop(cmd);
    let other = String::from_utf8_lossy(if on == Terminal::Stdout { &out.stderr } else { &out.stdout }).into_owned();
    assert!(out.status.success(), "{other}");
    // The child has exited and our copy of the terminal's end is gone: read to the end (Linux says
    // EIO once no one holds the other end).
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&bytes).replace("\r\n", "\n"), other)
}

pub fn ok(out: Output) -> String {
    assert_eq!(out.code, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    out.stdout
}

pub fn fails(out: Output, message: &str) {
    assert_ne!(out.code, 0, "expected failure, got: {}", out.stdout);
    assert!(out.stderr.contains(message), "expected {message:?} in {:?}", out.stderr);
}

async fn user_commands_manage_users_and_fail_clearly(kind: DbKind) {
    let db = TestDb::new(kind);
    let pw = format!("{PASSWORD}\n");
    ok(dashboard(&db, &["user", "add", "alice", "--role", "admin", "--password-stdin"], Some(&pw)));
    ok(dashboard(&db, &["user", "add", "bob", "--password-stdin"], Some(&pw)));
    fails(dashboard(&db, &["user", "add", "alice", "--password-stdin"], Some(&pw)), "taken");
    fails(dashboard(&db, &["user", "add", "carol", "--password-stdin"], Some("short\n")), "at least 15");
    fails(dashboard(&db, &["user", "add", "bad name!", "--password-stdin"], Some(&pw)), "username");
    fails(dashboard(&db, &["user", "add", "dave"], None), "--password-stdin");

    let list = ok(dashboard(&db, &["user", "list"], None));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("alice\tadmin\tactive\tnever"), "{list}");
    assert!(lines[1].starts_with("bob\tuser\tactive\tnever"), "{list}");

    ok(dashboard(&db, &["user", "role", "bob", "admin"], None));
    ok(dashboard(&db, &["user", "disable", "bob"], None));
    assert!(ok(dashboard(&db, &["user", "list"], None)).contains("bob\tadmin\tdisabled"));
    ok(dashboard(&db, &["user", "enable", "bob"], None));
    assert!(ok(dashboard(&db, &["user", "list"], None)).contains("bob\tadmin\tactive"));
    fails(dashboard(&db, &["user", "role", "nobody", "user"], None), "no user named");
    fails(dashboard(&db, &["user", "disable", "nobody"], None), "no user named");
    let bad_role = dashboard(&db, &["user", "role", "bob", "superuser"], None);
    assert_ne!(bad_role.code, 0);
}

async fn the_last_active_admin_can_be_neither_demoted_nor_disabled(kind: DbKind) {
    let db = TestDb::new(kind);
    let pw = format!("{PASSWORD}\n");
    ok(dashboard(&db, &["user", "add", "alice", "--role", "admin", "--password-stdin"], Some(&pw)));
    fails(dashboard(&db, &["user", "role", "alice", "user"], None), "last active admin");
    fails(dashboard(&db, &["user", "disable", "alice"], None), "last active admin");
    ok(dashboard(&db, &["user", "add", "bob", "--role", "admin", "--password-stdin"], Some(&pw)));
    ok(dashboard(&db, &["user", "disable", "bob"], None));
    fails(dashboard(&db, &["user", "role", "alice", "user"], None), "last active admin");
    ok(dashboard(&db, &["user", "enable", "bob"], None));
    ok(dashboard(&db, &["user", "role", "alice", "user"], None));
    let list = ok(dashboard(&db, &["user", "list"], None));
    assert!(list.contains("alice\tuser") && list.contains("bob\tadmin"), "{list}");
}

async fn user_passwd_and_disable_end_the_users_sessions(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    app.login("alice", PASSWORD).await;
    app.browser().login("alice", PASSWORD).await;
    let bob = app.browser();
    bob.login("bob", PASSWORD).await;

    let new_password = "a different passphrase entirely";
    let out =
        ok(dashboard(&app.db, &["user", "passwd", "alice", "--password-stdin"], Some(&format!("{new_password}\n"))));
    assert!(out.contains("ended 2 sessions"), "{out}");
    assert_eq!(app.get("/").await.status(), 303, "alice was signed out");
    assert_eq!(bob.get("/").await.status(), 200, "bob was not");
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 401);
    assert_eq!(app.browser().login("alice", new_password).await.status(), 303);

    let out = ok(dashboard(&app.db, &["user", "disable", "bob"], None));
    assert!(out.contains("ended 1 session") && !out.contains("1 sessions"), "{out}");
    assert_eq!(bob.get("/").await.status(), 303);
    assert_eq!(app.browser().login("bob", PASSWORD).await.status(), 401);
}

/// Public ids are base64url: about one in 32 starts with `-`, which must not read as a flag.
async fn a_session_id_starting_with_a_dash_can_be_revoked(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.login("alice", PASSWORD).await;
    let id = "-dash-first-id-000000x";
    {
        use dashboard::db::schema::sessions;
        use diesel::prelude::*;
        app.with_db(move |c| diesel::update(sessions::table).set(sessions::id.eq(id)).execute(c)).await;
    }
    let out = ok(dashboard(&app.db, &["sessions", "revoke", "--id", id], None));
    assert!(out.contains("ended 1 session"), "{out}");
    assert_eq!(app.session_rows().await, 0);
}

async fn sessions_commands_list_revoke_and_prune(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let (a1, a2, b1) = (app.browser(), app.browser(), app.browser());
    a1.login("alice", PASSWORD).await;
    a2.login("alice", PASSWORD).await;
    b1.client.get(b1.url("/login")).send().await.unwrap();
    b1.login("bob", PASSWORD).await;

    let list = ok(dashboard(&app.db, &["sessions", "list"], None));
    assert_eq!(list.lines().count(), 3, "{list}");
    let cookies = [a1.session_cookie().unwrap(), a2.session_cookie().unwrap(), b1.session_cookie().unwrap()];
    for cookie in &cookies {
        assert!(!list.contains(cookie.as_str()));
    }
    let ids: Vec<String> = app
        .with_db(|c| {
            use diesel::prelude::*;
            dashboard::db::schema::sessions::table.select(dashboard::db::schema::sessions::token_hash).load::<String>(c)
        })
        .await;
    for hash in &ids {
        assert!(!list.contains(hash.as_str()), "no token hash printed");
    }
    let bob_list = ok(dashboard(&app.db, &["sessions", "list", "--user", "bob"], None));
    assert_eq!(bob_list.lines().count(), 1);
    let bob_id = bob_list.split('\t').next().unwrap().to_owned();
    assert!(bob_list.contains("\tbob\t") && bob_list.contains("127.0.0.1"), "{bob_list}");

    assert_eq!(ok(dashboard(&app.db, &["sessions", "revoke", "--id", &bob_id], None)).trim(), "ended 1 session");
    assert_eq!(b1.get("/").await.status(), 303);
    fails(dashboard(&app.db, &["sessions", "revoke", "--id", &bob_id], None), "no session");
    fails(dashboard(&app.db, &["sessions", "revoke", "--user", "nobody"], None), "no user named");
    let none = dashboard(&app.db, &["sessions", "revoke"], None);
    assert_eq!(none.code, 2, "{}", none.stderr);
    for option in ["--id", "--user", "--all"] {
        assert!(none.stderr.contains(option), "the message lists {option}: {}", none.stderr);
    }

    // Prune deletes the expired rows, and only those.
    app.expire_all_sessions().await;
    let fresh = app.browser();
    fresh.login("bob", PASSWORD).await;
    assert_eq!(ok(dashboard(&app.db, &["sessions", "prune"], None)).trim(), "pruned 2 expired sessions");
    assert_eq!(app.session_rows().await, 1);
    assert_eq!(fresh.get("/").await.status(), 200);
    assert_eq!(ok(dashboard(&app.db, &["sessions", "prune"], None)).trim(), "pruned 0 expired sessions");

    let again = app.browser();
    again.login("bob", PASSWORD).await;
    assert_eq!(ok(dashboard(&app.db, &["sessions", "revoke", "--user", "bob"], None)).trim(), "ended 2 sessions");
    let events = ok(dashboard(&app.db, &["events", "list", "--kind", "session_ended"], None));
    assert!(events.contains("all 2 of their sessions"), "{events}");
    assert_eq!(fresh.get("/").await.status(), 303);

    let last = app.browser();
    last.login("bob", PASSWORD).await;
    assert_eq!(ok(dashboard(&app.db, &["sessions", "revoke", "--all"], None)).trim(), "ended 1 session");
    assert_eq!(last.get("/").await.status(), 303);
}

async fn lists_have_a_header_on_a_terminal_and_say_when_they_are_empty(kind: DbKind) {
    let app = spawn_app(kind).await;
    assert_eq!(dashboard_on_terminal(&app.db, &["user", "list"]), "no users yet\n");
    assert_eq!(dashboard_on_terminal(&app.db, &["sessions", "list"]), "no live sessions\n");
    assert_eq!(ok(dashboard(&app.db, &["user", "list"], None)), "", "a pipe gets no rows and no header");
    assert_eq!(ok(dashboard(&app.db, &["sessions", "list"], None)), "");

    app.create_user("alice", Role::Admin).await;
    app.create_user("bob", Role::User).await;
    app.login("bob", PASSWORD).await;
    let users = dashboard_on_terminal(&app.db, &["user", "list"]);
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!(lines.len(), 3, "{users}");
    assert!(
        lines[0].starts_with("NAME ")
            && lines[0].contains("ROLE")
            && lines[0].contains("LAST SIGN-IN")
            && lines[0].ends_with("SECOND FACTORS"),
        "{users}"
    );
    assert!(lines[1].starts_with("alice  ") && lines[2].starts_with("bob  "), "{users}");
    let column = lines[0].find("ROLE").unwrap();
    assert_eq!(lines[1].find("admin"), Some(column), "aligned: {users}");
    assert_eq!(lines[2].find("user"), Some(column), "aligned: {users}");

    let sessions = dashboard_on_terminal(&app.db, &["sessions", "list"]);
    let lines: Vec<&str> = sessions.lines().collect();
    assert_eq!(lines.len(), 2, "{sessions}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("LAST SEEN") && lines[0].ends_with("USER AGENT"),
        "{sessions}"
    );
    let piped = ok(dashboard(&app.db, &["sessions", "list"], None));
    assert_eq!(piped.lines().count(), 1, "{piped}");
    assert!(!piped.contains("LAST SEEN") && piped.contains("\tbob\t"), "{piped}");
}

async fn migrate_applies_pending_migrations(kind: DbKind) {
    let db = TestDb::new(kind);
    let first = ok(dashboard(&db, &["migrate"], None));
    let applied = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert_eq!(first.trim(), format!("applied {applied} migrations"));
    assert_eq!(ok(dashboard(&db, &["migrate"], None)).trim(), "applied 0 migrations");
    // A command on a new database migrates it first.
    let fresh = TestDb::new(kind);
    assert_eq!(ok(dashboard(&fresh, &["user", "list"], None)), "");
}

async fn serve_prints_where_it_listens_and_logs_sign_ins_without_secrets(kind: DbKind) {
    let db = TestDb::new(kind);
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("serve")
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("DASHBOARD_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let mut second = String::new();
    stdout.read_line(&mut first).unwrap();
    stdout.read_line(&mut second).unwrap();
    let address = first.trim().strip_prefix("listening on ").expect(&first).to_owned();
    assert!(address.starts_with("http://127.0.0.1:") && !address.ends_with(":0"), "{first}");
    let public = address.replace("127.0.0.1", "localhost");
    assert!(second.contains(&format!("{public}/setup?token=")), "{second}");

    ok(dashboard(&db, &["user", "add", "alice", "--password-stdin"], Some(&format!("{PASSWORD}\n"))));
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = Browser { client: client_with(jar.clone()), jar, address: address.clone() };
    assert_eq!(browser.login("alice", "a wrong password for alice").await.status(), 401);
    assert_eq!(browser.login("alice", PASSWORD).await.status(), 303);
    assert_eq!(browser.get("/").await.status(), 200);
    let cookie = browser.session_cookie().unwrap();
    stop_gracefully(&mut child);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("sign-in failed") && log.contains("sign-in succeeded"), "{log}");
    assert!(log.contains("alice") && log.contains("127.0.0.1"));
    assert!(log.contains("path=/") && log.contains("status=200"), "one line per request: {log}");
    assert!(!log.contains(PASSWORD) && !log.contains("a wrong password"), "no password in the log");
    assert!(!log.contains(&cookie), "no cookie in the log");
    let token = second.trim().rsplit("token=").next().unwrap();
    assert!(!log.contains(token), "no setup token in the log");
}

#[test]
fn a_bad_configuration_stops_with_a_message_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("DASHBOARD_SESSION_IDLE_TIMEOUT", "two hours"),
        ("DASHBOARD_LISTEN", "not an address"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("DASHBOARD_PUBLIC_URL", "ftp://example.com"),
        ("DASHBOARD_SMTP_URL", "smtp://mail.example.com:25?tls=sometimes"),
        ("DASHBOARD_MAIL_FROM", "not an address"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .arg("migrate")
            .current_dir(dir.path())
            .env("DATABASE_URL", dir.path().join("x.db"))
            .env(name, value)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert!(!dir.path().join("x.db").exists(), "nothing was created");
}

/// Runs the binary in `dir` with `env`, killing it after 60 s should it not stop by itself.
fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dashboard"));
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_port_in_use_names_the_address_and_dashboard_listen() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("x.db");
    let out = run_in(dir.path(), &["serve"], &[("DATABASE_URL", db.to_str().unwrap()), ("DASHBOARD_LISTEN", &addr)]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(&addr) && out.stderr.contains("DASHBOARD_LISTEN"), "{}", out.stderr);
    assert!(out.stderr.contains("already in use"), "{}", out.stderr);
    assert!(!out.stdout.contains("listening on"), "{}", out.stdout);
}

#[test]
fn a_sqlite_file_in_a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let db = missing.join("dashboard.db");
    for args in [&["migrate"][..], &["user", "list"], &["serve"]] {
        let out =
            run_in(dir.path(), args, &[("DATABASE_URL", db.to_str().unwrap()), ("DASHBOARD_LISTEN", "127.0.0.1:0")]);
        assert_ne!(out.code, 0, "{args:?}");
        assert!(out.stderr.contains(db.to_str().unwrap()), "{args:?} names the file: {}", out.stderr);
        let why = format!("the directory `{}` does not exist", missing.display());
        assert!(out.stderr.contains(&why), "{args:?} says why: {}", out.stderr);
    }
}

#[test]
fn configuration_errors_say_what_is_expected_and_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let out = run_in(
        dir.path(),
        &["migrate"],
        &[
            ("DATABASE_URL", db),
            ("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h"),
            ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "30m"),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT")
            && out.stderr.contains("DASHBOARD_SESSION_IDLE_TIMEOUT"),
        "{}",
        out.stderr
    );
    let out = run_in(dir.path(), &["migrate"], &[("DATABASE_URL", db), ("DASHBOARD_PRUNE_INTERVAL", "often")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("DASHBOARD_PRUNE_INTERVAL") && out.stderr.contains("90s, 15m, 2h"), "{}", out.stderr);
    assert!(!out.stderr.contains("expected number"), "no parser jargon: {}", out.stderr);
    assert!(!dir.path().join("x.db").exists(), "nothing was created");
}

#[test]
fn a_dotenv_file_is_read_and_the_real_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "DATABASE_URL=from-dotenv.db\nDASHBOARD_PRUNE_INTERVAL=5m\n").unwrap();
    let run = |env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dashboard"));
        cmd.arg("migrate").current_dir(dir.path()).env_remove("DATABASE_URL");
        if let Some(url) = env {
            cmd.env("DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(None);
    assert!(dir.path().join("from-dotenv.db").exists());
    run(Some("from-env.db"));
    assert!(dir.path().join("from-env.db").exists(), "the real environment wins");
}

both_databases!(events_list_shows_the_audit_log_and_prune_applies_the_retention);

async fn events_list_shows_the_audit_log_and_prune_applies_the_retention(kind: DbKind) {
    use dashboard::db::schema::auth_events;
    use diesel::prelude::*;

    let app = spawn_app(kind).await;
    let pw = format!("{PASSWORD}\n");
    ok(dashboard(&app.db, &["user", "add", "alice", "--password-stdin"], Some(&pw)));
    app.browser().login("alice", "wrong wrong wrong wrong").await;
    app.login("alice", PASSWORD).await;
    ok(dashboard(&app.db, &["user", "role", "alice", "admin"], None));

    let all = ok(dashboard(&app.db, &["events", "list"], None));
    let kinds: Vec<&str> = all.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(kinds, ["role_changed", "sign_in", "sign_in_failed", "user_created"], "newest first:\n{all}");
    assert!(all.lines().next().unwrap().contains("\talice\tcli\t"), "{all}");
    let failed = ok(dashboard(&app.db, &["events", "list", "--kind", "sign_in_failed", "--user", "alice"], None));
    assert_eq!(failed.lines().count(), 1);
    assert!(failed.contains("127.0.0.1"));
    assert!(!all.contains(PASSWORD) && !all.contains("wrong wrong"));
    assert_ne!(dashboard(&app.db, &["events", "list", "--kind", "bogus"], None).code, 0);

    // Events older than DASHBOARD_EVENT_RETENTION go at the next prune; the rest stay.
    let old = dashboard::util::now_ms() - 2 * 86_400_000;
    app.with_db(move |c| {
        diesel::update(auth_events::table.filter(auth_events::kind.eq("user_created")))
            .set(auth_events::at.eq(old))
            .execute(c)
    })
    .await;
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["sessions", "prune"])
        .env("DATABASE_URL", &app.db.url)
        .env("DASHBOARD_EVENT_RETENTION", "1day")
        .output()
        .unwrap();
    assert!(out.status.success());
    let left = ok(dashboard(&app.db, &["events", "list"], None));
    assert_eq!(left.lines().count(), 3, "{left}");
    assert!(!left.contains("user_created"));
}

async fn prune_shows_progress_on_a_terminal_only_and_prints_the_same_line_either_way(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("alice", Role::User).await;
    for _ in 0..3 {
        app.browser().login("alice", PASSWORD).await;
    }
    app.expire_all_sessions().await;

    // Piped (cron): exactly the one line, nothing on standard error, no escape code or carriage return.
    let out = dashboard(&app.db, &["sessions", "prune"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "pruned 3 expired sessions\n");
    assert_eq!(out.stderr, "");
    for output in [&out.stdout, &out.stderr] {
        assert!(!output.contains('\x1b') && !output.contains('\r'), "{output:?}");
    }

    // On a terminal: the bar is drawn on standard error (and cleared), the line is unchanged.
    for _ in 0..2 {
        app.browser().login("alice", PASSWORD).await;
    }
    app.expire_all_sessions().await;
    let (terminal, stdout) = dashboard_with_terminal(&app.db, &["sessions", "prune"], Terminal::Stderr);
    assert_eq!(stdout, "pruned 2 expired sessions\n");
    assert!(terminal.contains("deleting expired sessions"), "{terminal:?}");
    assert_eq!(app.session_rows().await, 0);
}
