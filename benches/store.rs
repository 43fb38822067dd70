//! `cargo bench`: the session store's operations on SQLite (and PostgreSQL when
//! `BENCH_DATABASE_URL` names a database), and the argon2 verification.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dashboard::config::Settings;
use dashboard::db::{self, schema::sessions, users};
use dashboard::session::{DbSessionStore, Timeouts, IDENTITY_KEY};
use diesel::prelude::*;

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
        let store = DbSessionStore::new(
            pool.clone(),
            &settings.database,
            Timeouts { idle: Duration::from_secs(7200), absolute: None },
        )
        .unwrap();
        let ttl = actix_web::cookie::time::Duration::hours(2);
        let mut state = HashMap::new();
        state.insert(IDENTITY_KEY.to_owned(), serde_json::to_string(&user.id).unwrap());
        let save = || rt.block_on(store.save(state.clone(), &ttl)).unwrap();
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
