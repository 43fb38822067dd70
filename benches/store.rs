//! `cargo bench`: the session store's operations on SQLite (and PostgreSQL when
//! `BENCH_DATABASE_URL` names a database), and the argon2 verification.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dashboard::accounts::{self, NewSession, PasswordSignIn};
use dashboard::clock::Clock;
use dashboard::config::Settings;
use dashboard::db::{self, schema::sessions, users};
use dashboard::session::{DbSessionStore, NewToken, Timeouts};
use diesel::prelude::*;
use secrecy::ExposeSecret;

fn store_ops(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![("sqlite", dir.path().join("bench.db").to_string_lossy().into_owned())];
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        targets.push(("postgres", url));
    }
    for (name, url) in targets {
        let settings = Settings::with_database(&url).unwrap();
        let pool = dashboard::startup::open_database(&settings).unwrap();
        let hash = dashboard::auth::password::hash_blocking("correct horse battery staple").unwrap();
        let user = {
            let mut conn = pool.get().unwrap();
            let name = format!("bench{}", dashboard::util::random_alphanumeric(6).to_lowercase());
            users::create(&mut conn, &name, &hash, users::Role::User).unwrap()
        };
        let timeouts = Timeouts { idle: Duration::from_secs(7200), absolute: None, max_per_user: 100 };
        let store = DbSessionStore::new(pool.clone(), &settings.database, timeouts, Clock::system()).unwrap();
        let ttl = actix_web::cookie::time::Duration::hours(2);
        let state: HashMap<String, String> = HashMap::new();
        // A sign-in's write: the accounts service's transaction (lock the user, check, insert, event).
        let save = || {
            let token = NewToken::new("{}".into());
            let sign_in = PasswordSignIn {
                user_id: user.id.clone(),
                verified_hash: user.password_hash.clone(),
                rehash: None,
                throttle_key: "u:bench".into(),
                address_key: None,
                trusted_browser: None,
            };
            let session = NewSession {
                token: token.row.clone(),
                ip: "127.0.0.1".into(),
                user_agent: "bench".into(),
                cloud: None,
                timeouts,
                now: dashboard::util::now_ms(),
                auth_method: dashboard::accounts::AuthMethod::Password,
                dbsc_challenge: None,
            };
            accounts::sign_in(&mut pool.get().unwrap(), &sign_in, &session).unwrap();
            SessionKey::try_from(token.secret().expose_secret().to_owned()).unwrap()
        };
        let key = save();
        let copy = |k: &SessionKey| SessionKey::try_from(k.as_ref().to_owned()).unwrap();

        let mut group = c.benchmark_group(format!("store/{name}"));
        group.bench_function("save (sign-in)", |b| b.iter(|| black_box(save())));
        group.bench_function("load (within the refresh slack: one read)", |b| {
            b.iter(|| black_box(rt.block_on(store.load(&key)).unwrap().unwrap()))
        });
        group.bench_function("load + refresh (one read, one write)", |b| {
            b.iter_batched(
                || {
                    let mut conn = pool.get().unwrap();
                    let behind = dashboard::util::now_ms() + 3_600_000;
                    diesel::update(sessions::table)
                        .set(sessions::idle_expires_at.eq(behind))
                        .execute(&mut *conn)
                        .unwrap();
                },
                |_| black_box(rt.block_on(store.load(&key)).unwrap().unwrap()),
                BatchSize::PerIteration,
            )
        });
        group.bench_function("update (session data changed)", |b| {
            b.iter(|| black_box(rt.block_on(store.update(copy(&key), state.clone(), &ttl)).unwrap()))
        });
        group.bench_function("delete (sign-out)", |b| {
            b.iter_batched(save, |k| rt.block_on(store.delete(&k)).unwrap(), BatchSize::PerIteration)
        });
        group.finish();
        let mut conn = pool.get().unwrap();
        db::sessions::delete_for_user(&mut conn, &user.id).unwrap();
    }
}

fn argon2(c: &mut Criterion) {
    let hash = dashboard::auth::password::hash_blocking("correct horse battery staple").unwrap();
    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group.sample_size(20);
    group.bench_function("verify", |b| {
        b.iter(|| assert!(dashboard::auth::password::verify_blocking(black_box("correct horse battery staple"), &hash)))
    });
    group.finish();
}

criterion_group!(benches, store_ops, argon2);
criterion_main!(benches);
