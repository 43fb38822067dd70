//! `Application::build(settings)`: opens the database, binds the listener (port 0 in tests) and
//! wires the app — middleware order, app data, routes.

use std::net::TcpListener;
use std::time::Duration;

use actix_identity::config::LogoutBehavior;
use actix_identity::IdentityMiddleware;
use actix_web::cookie::Key;
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use base64::Engine;
use secrecy::ExposeSecret;

use crate::auth::csrf::{self, CsrfConfig, FORM_LIMIT};
use crate::auth::guard;
use crate::auth::passkeys::PasskeySupport;
use crate::auth::password::Hasher;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, settings as app_settings, users, Pool};
use crate::session::{context, pruner, DbSessionStore, SessionCookie, Timeouts};
use crate::state::{AppState, Config};
use crate::{error, routes, telemetry};

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    prune_interval: Option<Duration>,
    retention: pruner::Retention,
    public_url: String,
    setup_url: Option<String>,
    /// The metrics listener (`DASHBOARD_METRICS_LISTEN`) and its port, when configured.
    metrics: Option<(u16, Server)>,
    /// The mail sender, when SMTP is configured.
    mail_sender: Option<crate::mail::sender::Sender>,
}

/// The cookie key: from `DASHBOARD_SECRET_KEY`, or generated once and kept in the database so
/// every instance and every restart uses the same one (one key for all workers, too).
pub fn load_or_create_key(configured: Option<Vec<u8>>, pool: &Pool) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = configured {
        return Ok(key);
    }
    let mut conn = pool.get()?;
    let fresh = crate::util::random_b64(64);
    let stored = app_settings::get_or_insert(&mut conn, "secret_key", &fresh)?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(stored.as_bytes())
        .map_err(|_| anyhow::anyhow!("the secret key stored in the database is not valid base64"))?;
    anyhow::ensure!(key.len() >= 64, "the secret key stored in the database is shorter than 64 bytes");
    Ok(key)
}

/// Opens the pool and applies pending migrations (every command does this first).
pub fn open_database(settings: &Settings) -> anyhow::Result<Pool> {
    let pool = db::connect(&settings.database)?;
    let mut conn = pool.get()?;
    // Which database, in full: a relative SQLite path silently means another file from another
    // working directory, and an empty one looks exactly like "every user is gone".
    tracing::info!(database = %settings.database.describe(), "opened the database");
    let applied = db::migrate(&mut conn)?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(pool)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (settings, pool, key_bytes) = tokio::task::spawn_blocking(move || {
            let pool = open_database(&settings)?;
            let key = load_or_create_key(settings.secret_key.as_ref().map(|k| k.expose_secret().clone()), &pool)?;
            Ok::<_, anyhow::Error>((settings, pool, key))
        })
        .await??;
        let cloud = crate::cloud::CloudAccess::from_settings(&settings, &key_bytes).await?;
        let hasher = {
            let n = settings.hash_concurrency;
            tokio::task::spawn_blocking(move || Hasher::new(n)).await??
        };

        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let public_url = settings.public_url_for(addr);
        let secure = public_url.starts_with("https://");
        let origins = settings.accepted_origins(addr);
        let passkeys = PasskeySupport::new(settings.sign_in.webauthn_rp_id.as_deref(), &public_url)?;
        match &passkeys {
            PasskeySupport::On(rp) => tracing::info!(rp_id = rp.rp_id(), "passkeys are on"),
            PasskeySupport::Off(why) => tracing::warn!("{why}"),
        }

        let setup_url = {
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
                let mut conn = pool.get()?;
                if users::count(&mut conn)? > 0 {
                    return Ok(None);
                }
                let token = app_settings::get_or_insert(
                    &mut conn,
                    crate::accounts::SETUP_TOKEN,
                    &crate::util::random_alphanumeric(32),
                )?;
                Ok(Some(token))
            })
            .await??
        }
        .map(|token| format!("{public_url}/setup?token={token}"));

        let clock = Clock::system();
        // The metrics listener is bound before the main one serves, so a wrong address stops the
        // start like a wrong DASHBOARD_LISTEN does.
        let metrics = match settings.metrics_listen {
            None => None,
            Some(addr) => {
                let handle = crate::metrics::install()?;
                let listener = TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (DASHBOARD_METRICS_LISTEN): {e}"))?;
                let port = listener.local_addr()?.port();
                Some((port, crate::metrics::server(listener, handle, pool.clone(), clock.clone())?))
            }
        };
        let timeouts = Timeouts {
            idle: settings.sessions.idle_timeout,
            absolute: settings.sessions.absolute_timeout,
            max_per_user: settings.sessions.max_per_user,
        };
        let cookie = SessionCookie::new(Key::from(&key_bytes), secure);
        let store = DbSessionStore::new(pool.clone(), &settings.database, timeouts, clock.clone())?;
        let mail_sender = match &settings.mail {
            Some(mail) => Some(crate::mail::sender::Sender {
                pool: pool.clone(),
                clock: clock.clone(),
                transport: crate::mail::sender::transport(&mail.smtp)
                    .map_err(|e| anyhow::anyhow!("invalid DASHBOARD_SMTP_URL: {e}"))?,
                from: mail.from.clone(),
                public_url: public_url.clone(),
                seal: crate::mail::sealer(&key_bytes),
                poll: settings.mail_poll_interval,
            }),
            None => None,
        };
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            hasher,
            config: Config {
                trusted_proxies: settings.trusted_proxies.clone(),
                password_min_length: settings.sign_in.password_min_length,
                idle_timeout_text: humantime::format_duration(settings.sessions.idle_timeout).to_string(),
                login_max_failures: settings.sign_in.max_failures,
                login_lockout: settings.sign_in.lockout,
                timeouts,
                mfa: settings.sign_in.mfa,
                reauth_max_age: settings.sign_in.reauth_max_age,
                trust_browser_days: settings.sign_in.trust_browser_days,
                dbsc_cookie_ttl: (settings.sign_in.dbsc && secure).then_some(settings.sign_in.dbsc_cookie_ttl),
            },
            cookie,
            cloud,
            clock,
            totp_seal: crate::seal::Sealer::new(&key_bytes, b"dashboard totp secret v1"),
            totp_setup_seal: crate::seal::Sealer::new(&key_bytes, b"dashboard totp setup v1"),
            passkeys,
            second_step_hold: Default::default(),
            trusted_sign_in_hold: Default::default(),
            reauth_hold: Default::default(),
            mail: crate::mail::Mail::new(mail_sender.is_some(), &key_bytes),
            public_url: public_url.clone(),
        });
        let app_state = state.clone();
        let csrf_config = web::Data::new(CsrfConfig::new(&key_bytes, secure, origins));
        let resolver = web::Data::new(crate::routing::Resolver::new(routes::specs()));
        let idle_timeout = settings.sessions.idle_timeout;

        let server = HttpServer::new(move || {
            // Built per worker from shared parts: the key is the same in every worker.
            let sessions = state.cookie.middleware(store.clone(), idle_timeout);
            let identity = IdentityMiddleware::builder()
                .logout_behavior(LogoutBehavior::PurgeSession)
                .login_deadline(None)
                .visit_deadline(None)
                .build();
            let headers = crate::security_headers::SecurityHeaders::new(secure);

            // Middleware order: the last `.wrap` is the outermost. Outside in: the path in normal
            // form and its route resolved (every check below reads that route), security headers,
            // the /cloud sandbox policy, request metrics, request log, HTML error pages; then, for the session scope:
            // the request's session context, session, identity, guard, CSRF — so the guard sees the
            // loaded session and redirects before any CSRF check; inside CSRF, the second-factor
            // policy, the re-authentication check of sensitive actions, and the admin check.
            App::new()
                .app_data(state.clone())
                .app_data(resolver.clone())
                .app_data(csrf_config.clone())
                .app_data(web::FormConfig::default().limit(FORM_LIMIT))
                .app_data(web::PayloadConfig::default().limit(FORM_LIMIT))
                .app_data(web::JsonConfig::default().limit(FORM_LIMIT))
                .wrap(from_fn(crate::limits::bound_request_size))
                .wrap(ErrorHandlers::new().default_handler(error::render_error_pages))
                .wrap(from_fn(telemetry::log_request))
                .wrap(from_fn(crate::metrics::record_request))
                // Inside the default headers, so its sandbox policy replaces the dashboard's.
                .wrap(from_fn(routes::cloud::isolate))
                .wrap(headers)
                .wrap(from_fn(crate::routing::resolve))
                .configure(routes::configure_open)
                .service(
                    web::scope("")
                        .wrap(from_fn(guard::require_admin))
                        .wrap(from_fn(crate::auth::reauth::require_recent))
                        .wrap(from_fn(guard::second_factor_policy))
                        .wrap(from_fn(csrf::protect))
                        .wrap(from_fn(guard::require_session))
                        .wrap(identity)
                        .wrap(sessions)
                        .wrap(from_fn(context::scope))
                        .configure(routes::configure)
                        .default_service(web::to(routes::not_found)),
                )
        })
        .listen(listener)?
        .max_connection_rate(256)
        .client_request_timeout(Duration::from_secs(10))
        .shutdown_timeout(5)
        .run();

        let retention =
            pruner::Retention { events: settings.event_retention, throttle_window: settings.sign_in.lockout };
        Ok(Self {
            port: addr.port(),
            server,
            state: app_state,
            prune_interval: settings.sessions.prune_interval,
            retention,
            public_url,
            setup_url,
            metrics,
            mail_sender,
        })
    }

    /// The metrics listener's port, when `DASHBOARD_METRICS_LISTEN` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://ADDR:PORT`, or `DASHBOARD_PUBLIC_URL`.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The one-time setup URL, when there are no users yet.
    pub fn setup_url(&self) -> Option<&str> {
        self.setup_url.as_deref()
    }

    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// The shared state (tests read the hasher's counters and cloud access, and move the clock).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server (tests restart it).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; the pruner and the metrics listener run alongside and stop with it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let pool = self.state.pool.clone();
        let pruner = self.prune_interval.map(|every| tokio::spawn(pruner::run(pool, every, self.retention)));
        let mail_sender = self.mail_sender.map(|sender| tokio::spawn(sender.run()));
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        if let Some(pruner) = pruner {
            pruner.abort();
        }
        if let Some(sender) = mail_sender {
            sender.abort();
        }
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        result
    }
}
