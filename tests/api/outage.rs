//! The database goes away and comes back: every route but `/healthz` answers an HTML
//! `503` with `Retry-After` within 5 s, `/login` still shows its form, and sessions work again
//! without a restart. PostgreSQL is cut with a TCP proxy the test controls; SQLite by making the
//! sessions table unreadable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard::db::users::Role;
use diesel::prelude::*;
use tokio::net::{TcpListener, TcpStream};

use crate::both_databases;
use crate::helpers::*;

both_databases!(while_the_database_is_gone_pages_are_503_and_sign_in_shows_its_form);

/// A TCP proxy to PostgreSQL that can be cut (every connection closed, new ones refused at once)
/// and restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, links) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (c, l) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy { port, cut, links }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn while_the_database_is_gone_pages_are_503_and_sign_in_shows_its_form(kind: DbKind) {
    let db = TestDb::new(kind);
    let mut proxy = None;
    let app = if kind == DbKind::Postgres {
        let mut url = url::Url::parse(&db.url).unwrap();
        let p = Proxy::start(url.port().unwrap_or(5432)).await;
        url.set_port(Some(p.port)).unwrap();
        proxy = Some(p);
        let proxied = dashboard::config::DatabaseUrl::parse(url.as_str()).unwrap();
        spawn_app_with(db.clone(), move |s| s.database = proxied).await
    } else {
        spawn_app(kind).await
    };
    app.create_user("alice", Role::User).await;
    let alice = app.me();
    assert_eq!(alice.login("alice", PASSWORD).await.status(), 303);
    assert_eq!(alice.get("/").await.status(), 200);

    // The database goes away.
    let break_it = |conn: &mut dashboard::db::DbConn| {
        diesel::sql_query("ALTER TABLE sessions RENAME TO sessions_gone").execute(conn).map(|_| ())
    };
    match &proxy {
        Some(p) => p.cut(),
        None => app.with_db(break_it).await,
    }
    for path in ["/", "/account/sessions", "/admin/sessions", "/nope"] {
        let started = Instant::now();
        let res = alice.get(path).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers()["retry-after"], "5", "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = res.text().await.unwrap();
        assert!(body.contains("cannot reach its database"), "{path}: {body}");
        for leak in ["diesel", "sessions_gone", "no such table", "does not exist", "connection", ".rs"] {
            assert!(!body.contains(leak), "{path} shows {leak:?}");
        }
    }
    let form = alice.get("/login").await;
    assert_eq!(form.status(), 200, "the sign-in form needs no database");
    assert!(form.text().await.unwrap().contains(r#"name="csrf_token""#));
    let started = Instant::now();
    let res = app.browser().login("alice", PASSWORD).await;
    if kind == DbKind::Postgres {
        assert_eq!(res.status(), 503, "a sign-in cannot be checked");
        assert_eq!(res.headers()["retry-after"], "5");
    } else {
        // The file answers but its table is gone: a failed write, a generic error page.
        assert!(res.status().is_server_error(), "{}", res.status());
    }
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.get("/healthz").await.status(), 200, "the process is up");
    if kind == DbKind::Postgres {
        assert_eq!(app.get("/readyz").await.status(), 503, "the database does not answer");
    }

    // It comes back: the same session works again, without a restart.
    match &proxy {
        Some(p) => p.restore(),
        None => {
            app.with_db(|c| diesel::sql_query("ALTER TABLE sessions_gone RENAME TO sessions").execute(c).map(|_| ()))
                .await
        }
    }
    let started = Instant::now();
    loop {
        let status = alice.get("/").await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "never signed out by the outage");
        assert!(started.elapsed() < Duration::from_secs(10), "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each pooled connection the outage broke fails once when next used, then is replaced.
    let ready = loop {
        let status = app.get("/readyz").await.status();
        if status == 200 || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready, 200);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status(), 303, "sign-in works again");
}
