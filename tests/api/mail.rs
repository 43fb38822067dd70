//! Mail against a real SMTP server (aiosmtpd, see `smtp.rs`): invitations, password
//! resets and new-device mail go through the outbox; links are read out of the received mail and
//! followed; an SMTP outage delays mail and loses none.

use std::time::{Duration, Instant};

use dashboard::accounts::{self, Actor};
use dashboard::db::schema::{account_tokens, mail_outbox, users};
use dashboard::db::users::Role;
use diesel::prelude::*;

use crate::both_databases;
use crate::helpers::*;
use crate::second_factors::{code, enrol, next_step};
use crate::smtp::{SmtpSink, StopOnDrop};

both_databases!(
    a_reset_link_from_the_mail_sets_a_new_password_once_and_ends_every_session,
    reset_answers_are_the_same_whatever_was_typed_and_only_enabled_accounts_with_an_address_get_mail,
    a_reset_link_is_dead_after_30_minutes,
    a_reset_link_does_nothing_for_a_user_disabled_since,
    a_flood_of_reset_requests_mails_three_an_hour_and_locks_the_address,
    a_sign_in_that_completes_while_a_reset_is_in_flight_is_ended_by_it,
    a_second_step_in_flight_during_a_reset_signs_nobody_in_and_the_factor_stays,
    an_invitation_mailed_by_an_admin_sets_a_password_and_signs_in_once,
    an_invitation_for_a_name_that_was_deleted_and_made_again_does_nothing,
    mail_waits_while_smtp_is_down_and_arrives_once_when_it_is_back,
    a_refusing_smtp_server_keeps_the_mail_with_its_error,
    a_hanging_smtp_server_holds_no_request,
    required_tls_sends_nothing_to_a_server_without_starttls,
    with_two_instances_on_one_database_each_mail_is_sent_once,
    a_new_device_sign_in_mails_the_user,
    without_smtp_there_is_no_reset_page_and_no_invitation_by_mail,
    addresses_are_unique_case_insensitively_and_shown_to_admins,
    the_commands_set_addresses_print_invitations_and_list_the_outbox,
    the_outbox_depth_is_a_metric,
    mail_that_expires_unsent_is_given_up_and_listed_as_failed,
    old_sent_mail_and_expired_links_are_pruned_like_events_and_waiting_mail_never,
    mail_goes_over_starttls_and_smtps_with_the_certificate_checked,
);

/// The app with SMTP at `smtp_url` (the sender looks for mail every 50 ms).
pub async fn spawn_with_mail(
    db: std::sync::Arc<TestDb>,
    smtp_url: &str,
    tweak: impl FnOnce(&mut dashboard::config::Settings),
) -> TestApp {
    let url = smtp_url.to_owned();
    spawn_app_with(db, move |s| {
        s.mail = Some(dashboard::config::MailSettings {
            smtp: dashboard::mail::SmtpSettings::parse(&url).unwrap(),
            from: dashboard::mail::parse_from("Dashboard <dashboard@example.com>").unwrap(),
        });
        s.mail_poll_interval = Duration::from_millis(50);
        tweak(s);
    })
    .await
}

async fn app_and_sink(kind: DbKind) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let app = spawn_with_mail(TestDb::new(kind), &sink.url(""), |_| {}).await;
    (app, sink)
}

/// A user with an address.
pub async fn user_with_email(app: &TestApp, name: &str, email: &str) {
    app.create_user(name, Role::User).await;
    let (name, email) = (name.to_owned(), accounts::valid_email(email).unwrap());
    app.with_db(move |c| {
        accounts::set_email(c, &name, email.as_deref(), Actor::Cli).unwrap();
        Ok(())
    })
    .await;
}

async fn ask_reset(b: &Browser, typed: &str) -> reqwest::Response {
    b.submit("/password-reset", "/password-reset", &[("username", typed)]).await
}

/// Posts the link's form (with a CSRF token from the sign-in page: the link's own page may be a 400).
async fn set_via_link(b: &Browser, link: &str, password: &str) -> reqwest::Response {
    b.submit(
        "/login",
        link.split('?').next().unwrap(),
        &[("token", token_of(link)), ("new_password", password), ("confirm_password", password)],
    )
    .await
}

fn token_of(link: &str) -> &str {
    link.split("token=").nth(1).unwrap()
}

/// Outbox rows: (kind, recipient, status).
async fn outbox(app: &TestApp) -> Vec<(String, String, String)> {
    app.with_db(|c| {
        mail_outbox::table
            .order(mail_outbox::created_at)
            .select((mail_outbox::kind, mail_outbox::recipient, mail_outbox::status))
            .load(c)
    })
    .await
}

/// Waits until every outbox row is sent.
async fn all_sent(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox(app).await.iter().any(|(_, _, status)| status != "sent") {
        assert!(Instant::now() < deadline, "mail still waiting: {:?}", outbox(app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const NEW_PASSWORD: &str = "a brand new long passphrase";

async fn a_reset_link_from_the_mail_sets_a_new_password_once_and_ends_every_session(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let (signed_in, other) = (app.browser(), app.browser());
    signed_in.login("bob", PASSWORD).await;
    assert!(app.get("/login").await.text().await.unwrap().contains("href=\"/password-reset\""), "/login links to it");

    let res = ask_reset(&other, "bob").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"password-reset-sent\""));
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(mail.from, "dashboard@example.com");
    assert!(mail.header_from.contains("Dashboard"), "{}", mail.header_from);
    assert!(mail.subject.contains("Reset"), "{}", mail.subject);
    let link = mail.link_path("/password-reset/confirm");
    assert!(
        mail.link("/password-reset/confirm").starts_with(&app.address.replace("127.0.0.1", "localhost")),
        "the public URL is in the link"
    );
    assert!(
        mail.html.contains(&format!("href=\"{}\"", mail.link("/password-reset/confirm"))),
        "the HTML has the same link"
    );
    assert!(!mail.html.contains("<img"), "no tracking pixel");
    // At rest: only a hash of the token; the mail's copy is gone once sent.
    let stored: Vec<String> = app.with_db(|c| account_tokens::table.select(account_tokens::token_hash).load(c)).await;
    assert_eq!(stored, [dashboard::util::sha256_hex(token_of(&link))]);
    all_sent(&app).await;
    let payloads: Vec<String> = app.with_db(|c| mail_outbox::table.select(mail_outbox::payload).load(c)).await;
    assert_eq!(payloads, [""]);

    let form = other.get(&link).await;
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("name=\"new_password\""));
    let weak = set_via_link(&other, &link, "short").await;
    assert_eq!(weak.status(), 400, "the policy applies");
    let res = set_via_link(&other, &link, NEW_PASSWORD).await;
    assert_eq!((res.status().as_u16(), location(&res).as_str()), (303, "/login"));
    assert_eq!(signed_in.get("/").await.status(), 303, "every session ended");
    assert_eq!(app.session_rows().await, 0);
    assert_eq!(location(&app.browser().login("bob", PASSWORD).await), "", "the old password is gone");
    assert_eq!(location(&app.browser().login("bob", NEW_PASSWORD).await), "/");
    assert_eq!(other.get(&link).await.status(), 400, "used once");
    assert_eq!(set_via_link(&other, &link, "another long passphrase here").await.status(), 400);
    let kinds = crate::reauth::event_kinds(&app).await;
    assert!(
        kinds.contains(&"password_reset".to_owned()) && kinds.contains(&"password_reset_requested".to_owned()),
        "{kinds:?}"
    );
}

async fn reset_answers_are_the_same_whatever_was_typed_and_only_enabled_accounts_with_an_address_get_mail(
    kind: DbKind,
) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "carol", "carol@example.com").await;
    user_with_email(&app, "dave", "dave@example.com").await;
    app.create_user("erin", Role::User).await; // no address
    app.with_db(|c| Ok(accounts::disable(c, "dave", Actor::Cli).unwrap())).await;
    let b = app.browser();
    let mut answers = Vec::new();
    for typed in ["nobody", "erin", "dave", "dave@example.com", "no@example.com", "", "Carol@Example.COM"] {
        let started = Instant::now();
        let res = ask_reset(&b, typed).await;
        let took = started.elapsed();
        assert!(took >= dashboard::routes::password_reset::ANSWER_TIME, "{typed}: {took:?}");
        answers.push((res.status().as_u16(), res.text().await.unwrap()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "one answer for all");
    let mails = sink.wait_for(1).await;
    all_sent(&app).await;
    assert_eq!(sink.received().len(), 1, "only carol's");
    assert_eq!(mails[0].to, ["carol@example.com"]);
}

async fn a_reset_link_is_dead_after_30_minutes(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let b = app.browser();
    ask_reset(&b, "bob").await;
    let link = sink.wait_for(1).await[0].link_path("/password-reset/confirm");
    assert_eq!(b.get(&link).await.status(), 200);
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    assert_eq!(b.get(&link).await.status(), 400);
    let html = b.get("/password-reset").await.text().await.unwrap(); // a page for the CSRF token
    let token = csrf_from(&html);
    let res = b
        .client
        .post(b.url("/password-reset/confirm"))
        .form(&[
            ("token", token_of(&link)),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(location(&app.browser().login("bob", PASSWORD).await), "/", "the password stayed");
}

async fn a_reset_link_does_nothing_for_a_user_disabled_since(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let b = app.browser();
    ask_reset(&b, "bob").await;
    let link = sink.wait_for(1).await[0].link_path("/password-reset/confirm");
    let form = b.get(&link).await.text().await.unwrap();
    app.with_db(|c| Ok(accounts::disable(c, "bob", Actor::Cli).unwrap())).await;
    let res = b
        .client
        .post(b.url("/password-reset/confirm"))
        .form(&[
            ("token", token_of(&link)),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
            ("csrf_token", &csrf_from(&form)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(b.get(&link).await.status(), 400);
    app.with_db(|c| {
        accounts::enable(c, "bob", Actor::Cli).unwrap();
        Ok(())
    })
    .await;
    assert_eq!(location(&app.browser().login("bob", PASSWORD).await), "/", "the password did not change");
}

async fn a_flood_of_reset_requests_mails_three_an_hour_and_locks_the_address(kind: DbKind) {
    let sink = SmtpSink::start();
    // Two failures per username, so twenty per address.
    let app = spawn_with_mail(TestDb::new(kind), &sink.url(""), |s| s.sign_in.max_failures = 2).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let b = app.browser();
    let token = csrf_from(&b.get("/password-reset").await.text().await.unwrap());
    let requests = (0..30).map(|_| {
        let request = b.client.post(b.url("/password-reset")).form(&[("username", "bob"), ("csrf_token", &token)]);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(answered, 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10, "the address is locked after twenty");
    assert_eq!(outbox(&app).await.len(), 3, "three mails an hour for one account");
    assert!(crate::reauth::event_kinds(&app).await.contains(&"locked_out".to_owned()));
    assert_eq!(location(&b.login("bob", PASSWORD).await), "", "sign-ins from the address are locked too");
    sink.wait_for(3).await;
    all_sent(&app).await;
    assert_eq!(sink.received().len(), 3);
    // An hour later (and past the address's lock) the account may have another.
    app.clock.advance(Duration::from_secs(3600 + 60));
    assert_eq!(ask_reset(&b, "bob").await.status(), 200);
    assert_eq!(outbox(&app).await.len(), 4);
}

async fn a_sign_in_that_completes_while_a_reset_is_in_flight_is_ended_by_it(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let (resetter, signer) = (app.browser(), app.browser());
    ask_reset(&resetter, "bob").await;
    let link = sink.wait_for(1).await[0].link_path("/password-reset/confirm");
    // The reset, its new password hashed, is held just before its transaction; a sign-in with the
    // old password completes meanwhile.
    let mut held = app.app_state().mail.reset_hold.hold_next();
    let reset = resetter
        .submit_in_background(
            &link,
            "/password-reset/confirm",
            &[("token", token_of(&link)), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
        )
        .await;
    held.reached().await;
    assert_eq!(location(&signer.login("bob", PASSWORD).await), "/");
    assert_eq!(signer.get("/").await.status(), 200);
    held.release();
    assert_eq!(location(&reset.await.unwrap()), "/login");
    assert_eq!(signer.get("/").await.status(), 303, "the session made meanwhile ended with the reset");
    assert_eq!(app.session_rows().await, 0);
}

async fn a_second_step_in_flight_during_a_reset_signs_nobody_in_and_the_factor_stays(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "alice", "alice@example.com").await;
    let me = app.me();
    me.login("alice", PASSWORD).await;
    let (secret, _) = enrol(&app, &me).await;
    me.logout().await;
    next_step(&app);
    // alice's password is right and her code checked; the second step is held before it is spent.
    let a = app.browser();
    assert_eq!(location(&a.login("alice", PASSWORD).await), "/login/mfa");
    let mut held = app.app_state().second_step_hold.hold_next();
    let step = a.submit_in_background("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    held.reached().await;
    let b = app.browser();
    ask_reset(&b, "alice").await;
    let link = sink.wait_for(1).await[0].link_path("/password-reset/confirm");
    assert_eq!(location(&set_via_link(&b, &link, NEW_PASSWORD).await), "/login");
    held.release();
    let step = step.await.unwrap();
    assert_ne!(location(&step), "/", "the pending sign-in ended with the reset");
    assert_eq!(app.session_rows().await, 0);
    // The app is still asked for.
    next_step(&app);
    let c = app.browser();
    assert_eq!(location(&c.login("alice", NEW_PASSWORD).await), "/login/mfa");
    let res = c.submit("/login/mfa", "/login/mfa", &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(location(&res), "/");
}

async fn an_invitation_mailed_by_an_admin_sets_a_password_and_signs_in_once(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    app.create_user("root", Role::Admin).await;
    let admin = app.me();
    admin.login("root", PASSWORD).await;
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[("username", "Dave"), ("email", "Dave@Example.com"), ("password", ""), ("role", "user")],
        )
        .await;
    assert_eq!(location(&res), "/admin/users?done=user-invited");
    let page = admin.get("/admin/users").await.text().await.unwrap();
    assert!(page.contains("data-email=\"dave@example.com\""), "the address is shown");
    assert_eq!(location(&app.browser().login("dave", "").await), "", "no password signs in before the invitation");

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.to, ["dave@example.com"]);
    let link = mail.link_path("/invite");
    let dave = app.browser();
    let form = dave.get(&link).await;
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("value=\"dave\""), "the form names the account");
    let res = set_via_link(&dave, &link, NEW_PASSWORD).await;
    assert_eq!(location(&res), "/");
    let home = dave.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("dave"));
    assert_eq!(dave.get(&link).await.status(), 400, "single use");
    assert_eq!(set_via_link(&app.browser(), &link, "yet another long passphrase").await.status(), 400);
    assert_eq!(location(&app.browser().login("dave", NEW_PASSWORD).await), "/");
    // Expired after 72 hours.
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[("username", "erin"), ("email", "erin@example.com"), ("role", "user")],
        )
        .await;
    assert_eq!(location(&res), "/admin/users?done=user-invited");
    let link = sink.wait_for(2).await[1].link_path("/invite");
    app.clock.advance(Duration::from_secs(72 * 3600 + 1));
    assert_eq!(app.browser().get(&link).await.status(), 400);
}

async fn an_invitation_for_a_name_that_was_deleted_and_made_again_does_nothing(kind: DbKind) {
    let (app, _sink) = app_and_sink(kind).await;
    let token = "a-printed-invitation-token-of-enough-length";
    let link =
        accounts::NewLink { token_hash: dashboard::util::sha256_hex(token), mail: None, now: app.clock.now_ms() };
    app.with_db(move |c| {
        let invitation = accounts::NewInvitation {
            username: "frank",
            role: Role::User,
            email: None,
            unusable_hash: password_hash(),
            link,
        };
        Ok(accounts::invite_new_user(c, &invitation, Actor::Cli).unwrap())
    })
    .await;
    let path = format!("/invite?token={token}");
    assert_eq!(app.browser().get(&path).await.status(), 200);
    app.with_db(|c| diesel::delete(users::table.filter(users::username.eq("frank"))).execute(c)).await;
    assert_eq!(app.browser().get(&path).await.status(), 400, "gone with its account");
    app.create_user("frank", Role::User).await;
    let b = app.browser();
    assert_eq!(b.get(&path).await.status(), 400, "not the new frank's");
    let form = b.get("/login").await.text().await.unwrap();
    let res = b
        .client
        .post(b.url("/invite"))
        .form(&[
            ("token", token),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
            ("csrf_token", &csrf_from(&form)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.session_rows().await, 0);
}

async fn mail_waits_while_smtp_is_down_and_arrives_once_when_it_is_back(kind: DbKind) {
    let (app, mut sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    user_with_email(&app, "carol", "carol@example.com").await;
    sink.stop();
    let b = app.browser();
    let started = Instant::now();
    ask_reset(&b, "bob").await;
    ask_reset(&b, "carol").await;
    assert!(started.elapsed() < Duration::from_secs(3), "the requests did not wait for SMTP");
    // Both tried and failed, with the error kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let errors: Vec<Option<String>> =
            app.with_db(|c| mail_outbox::table.select(mail_outbox::last_error).load(c)).await;
        if errors.len() == 2 && errors.iter().all(Option::is_some) {
            break;
        }
        assert!(Instant::now() < deadline, "{errors:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(outbox(&app).await.iter().all(|(_, _, s)| s == "waiting"));
    let out = crate::cli::dashboard(&app.db, &["mail", "list", "--status", "waiting"], None);
    let listed = crate::cli::ok(out);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("bob@example.com") && listed.contains("SMTP"), "{listed}");

    sink.resume();
    // The first retry is due within 10 seconds.
    app.clock.advance(Duration::from_secs(10));
    sink.wait_for(2).await;
    all_sent(&app).await;
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await; // a few more rounds of the sender: nothing more goes
    let got = sink.received();
    assert_eq!(got.len(), 2, "each once");
    let mut to: Vec<&str> = got.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(to, ["bob@example.com", "carol@example.com"]);
}

async fn a_refusing_smtp_server_keeps_the_mail_with_its_error(kind: DbKind) {
    let sink = SmtpSink::refusing();
    let app = spawn_with_mail(TestDb::new(kind), &sink.url(""), |_| {}).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    ask_reset(&app.browser(), "bob").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let rows: Vec<(Option<String>, i32, i64)> = app
            .with_db(|c| {
                mail_outbox::table
                    .select((mail_outbox::last_error, mail_outbox::attempts, mail_outbox::next_attempt_at))
                    .load(c)
            })
            .await;
        if let Some((Some(error), attempts, next)) = rows.into_iter().next() {
            assert_eq!(attempts, 1);
            assert!(next > app.clock.now_ms() && next <= app.clock.now_ms() + 10_000, "retried within 10 s");
            break error;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("451"), "{error}");
    assert_eq!(outbox(&app).await[0].2, "waiting");
    assert!(sink.received().is_empty());
}

async fn a_hanging_smtp_server_holds_no_request(kind: DbKind) {
    // Accepts connections and never says a word (a task of this test's runtime: it ends with it).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            open.push(conn);
        }
    });
    let app = spawn_with_mail(TestDb::new(kind), &format!("smtp://127.0.0.1:{port}"), |_| {}).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    user_with_email(&app, "carol", "carol@example.com").await;
    let b = app.browser();
    for name in ["bob", "carol", "bob"] {
        let started = Instant::now();
        assert_eq!(ask_reset(&b, name).await.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "{name}: {:?}", started.elapsed());
    }
    assert_eq!(app.get("/login").await.status(), 200);
    assert_eq!(outbox(&app).await.len(), 3, "all kept");
}

async fn required_tls_sends_nothing_to_a_server_without_starttls(kind: DbKind) {
    let sink = SmtpSink::start();
    let app = spawn_with_mail(TestDb::new(kind), &sink.url("?tls=required"), |_| {}).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    ask_reset(&app.browser(), "bob").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let errors: Vec<Option<String>> =
            app.with_db(|c| mail_outbox::table.select(mail_outbox::last_error).load(c)).await;
        if let Some(Some(error)) = errors.first() {
            assert!(error.to_lowercase().contains("tls"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sink.received().is_empty(), "nothing in clear");
}

async fn with_two_instances_on_one_database_each_mail_is_sent_once(kind: DbKind) {
    let sink = SmtpSink::start();
    let one = spawn_with_mail(TestDb::new(kind), &sink.url(""), |_| {}).await;
    let two = spawn_with_mail(one.db.clone(), &sink.url(""), |_| {}).await;
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    for name in &names {
        user_with_email(&one, name, &format!("{name}@example.com")).await;
    }
    for (i, name) in names.iter().enumerate() {
        let b = if i % 2 == 0 { one.browser() } else { two.browser() };
        ask_reset(&b, name).await;
    }
    sink.wait_for(names.len()).await;
    all_sent(&one).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.received();
    assert_eq!(got.len(), names.len(), "each once");
    let mut ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), names.len());
    let mut to: Vec<&str> = got.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), names.len(), "one each");
}

async fn a_new_device_sign_in_mails_the_user(kind: DbKind) {
    let (app, sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let chrome =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    app.browser_as(firefox).login("bob", PASSWORD).await; // the first sign-in: nothing to compare with
    app.browser_as(firefox).login("bob", PASSWORD).await; // a known device
    app.browser_as(chrome).login("bob", PASSWORD).await;
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.to, ["bob@example.com"]);
    assert!(mail.subject.contains("New sign-in"), "{}", mail.subject);
    assert!(mail.text.contains("Chrome") && mail.text.contains("/account/sessions"), "{}", mail.text);
    all_sent(&app).await;
    assert_eq!(sink.received().len(), 1);
}

async fn without_smtp_there_is_no_reset_page_and_no_invitation_by_mail(kind: DbKind) {
    let app = spawn_app(kind).await;
    assert_eq!(app.get("/password-reset").await.status(), 404);
    assert!(!app.get("/login").await.text().await.unwrap().contains("/password-reset"));
    app.create_user("root", Role::Admin).await;
    let admin = app.me();
    admin.login("root", PASSWORD).await;
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[("username", "dave"), ("email", "dave@example.com"), ("role", "user")],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("dashboard user invite"));
    // With a password, the address is simply kept.
    let res = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[("username", "dave"), ("email", "dave@example.com"), ("password", NEW_PASSWORD), ("role", "user")],
        )
        .await;
    assert_eq!(location(&res), "/admin/users?done=user-created");
    let emails: Vec<Option<String>> =
        app.with_db(|c| users::table.filter(users::username.eq("dave")).select(users::email).load(c)).await;
    assert_eq!(emails, [Some("dave@example.com".to_owned())]);
}

async fn addresses_are_unique_case_insensitively_and_shown_to_admins(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("root", Role::Admin).await;
    user_with_email(&app, "bob", "Bob@Example.com").await;
    let taken = app.with_db(|c| Ok(accounts::set_email(c, "root", Some("bob@example.com"), Actor::Cli))).await;
    assert!(matches!(taken, Err(accounts::AccountError::EmailTaken(_))), "{taken:?}");
    let admin = app.me();
    admin.login("root", PASSWORD).await;
    for (email, why) in [
        ("BOB@example.com", "belongs to another user"),
        ("not-an-address", "needs an @"),
        ("bob@example", "not an email address"),
    ] {
        let res = admin
            .submit(
                "/admin/users",
                "/admin/users",
                &[("username", "x1"), ("email", email), ("password", NEW_PASSWORD), ("role", "user")],
            )
            .await;
        assert!(res.status().is_client_error(), "{email}");
        assert!(res.text().await.unwrap().contains(why), "{email}");
    }
    assert!(admin.get("/admin/users").await.text().await.unwrap().contains("data-email=\"bob@example.com\""));
}

async fn the_commands_set_addresses_print_invitations_and_list_the_outbox(kind: DbKind) {
    use crate::cli::{dashboard, fails, ok};
    let (app, _sink) = app_and_sink(kind).await;
    let db = app.db.clone();
    ok(dashboard(&db, &["user", "add", "bob", "--email", "Bob@Example.com", "--password-stdin"], Some(PASSWORD)));
    let email = || {
        app.with_db(|c| users::table.filter(users::username.eq("bob")).select(users::email).first::<Option<String>>(c))
    };
    assert_eq!(email().await.as_deref(), Some("bob@example.com"));
    fails(
        dashboard(&db, &["user", "add", "carol", "--email", "BOB@example.com", "--password-stdin"], Some(PASSWORD)),
        "belongs to another user",
    );
    fails(dashboard(&db, &["user", "set-email", "bob", "bob"], None), "needs an @");
    assert!(ok(dashboard(&db, &["user", "set-email", "bob", "new@example.com"], None)).contains("new@example.com"));
    assert_eq!(email().await.as_deref(), Some("new@example.com"));
    ok(dashboard(&db, &["user", "set-email", "bob", ""], None));
    assert_eq!(email().await, None);

    let printed = ok(dashboard(&db, &["user", "invite", "dave", "--email", "dave@example.com"], None));
    let link = &printed[printed.find("http").unwrap()..].trim().to_owned();
    let path = |link: &str| link[link.find("/invite?").unwrap()..].to_owned();
    let first = path(link);
    assert_eq!(app.browser().get(&first).await.status(), 200, "{printed}");
    let printed = ok(dashboard(&db, &["user", "invite", "dave"], None));
    let second = path(printed.trim());
    assert_eq!(app.browser().get(&first).await.status(), 400, "a new link replaces the old");
    let dave = app.browser();
    assert_eq!(location(&set_via_link(&dave, &second, NEW_PASSWORD).await), "/");
    fails(dashboard(&db, &["user", "invite", "dave"], None), "signed in already");
    assert!(outbox(&app).await.is_empty(), "a printed invitation sends no mail");

    ask_reset(&app.browser(), "dave").await;
    all_sent(&app).await;
    let listed = ok(dashboard(&db, &["mail", "list"], None));
    let row: Vec<&str> = listed.trim().split('\t').collect();
    assert_eq!(row[2..6], ["password_reset", "dave@example.com", "sent", "1"], "{listed}");
    assert_eq!(ok(dashboard(&db, &["mail", "list", "--status", "failed"], None)), "");
}

async fn the_outbox_depth_is_a_metric(kind: DbKind) {
    let mut sink = SmtpSink::start();
    sink.stop();
    let app = spawn_with_mail(TestDb::new(kind), &sink.url(""), |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    user_with_email(&app, "bob", "bob@example.com").await;
    ask_reset(&app.browser(), "bob").await;
    let port = app.metrics_port.unwrap();
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l == "dashboard_mail_outbox_depth 1"), "{text}");
}

async fn mail_that_expires_unsent_is_given_up_and_listed_as_failed(kind: DbKind) {
    let (app, mut sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    sink.stop();
    ask_reset(&app.browser(), "bob").await;
    // Its link dies after 30 minutes, and so does the mail.
    app.clock.advance(Duration::from_secs(31 * 60));
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox(&app).await[0].2 != "failed" {
        assert!(Instant::now() < deadline, "{:?}", outbox(&app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payloads: Vec<String> = app.with_db(|c| mail_outbox::table.select(mail_outbox::payload).load(c)).await;
    assert_eq!(payloads, [""], "its sealed link is gone too");
    let listed = crate::cli::ok(crate::cli::dashboard(&app.db, &["mail", "list", "--status", "failed"], None));
    assert!(listed.contains("expired before it could be sent"), "{listed}");
    sink.resume();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "a dead link is not sent late");
}

async fn old_sent_mail_and_expired_links_are_pruned_like_events_and_waiting_mail_never(kind: DbKind) {
    let (app, mut sink) = app_and_sink(kind).await;
    user_with_email(&app, "bob", "bob@example.com").await;
    user_with_email(&app, "carol", "carol@example.com").await;
    ask_reset(&app.browser(), "bob").await;
    sink.wait_for(1).await;
    all_sent(&app).await;
    sink.stop();
    ask_reset(&app.browser(), "carol").await; // stays waiting
                                              // Both two days old; bob's link long expired.
    let old = dashboard::util::now_ms() - 2 * 86_400_000;
    app.with_db(move |c| {
        diesel::update(mail_outbox::table).set(mail_outbox::created_at.eq(old)).execute(c)?;
        diesel::update(account_tokens::table).set(account_tokens::expires_at.eq(old)).execute(c)
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["sessions", "prune"])
        .env("DATABASE_URL", &app.db.url)
        .env("DASHBOARD_EVENT_RETENTION", "1day")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left = outbox(&app).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].1.as_str(), left[0].2.as_str()), ("carol@example.com", "waiting"));
    assert_eq!(app.with_db(|c| account_tokens::table.count().get_result::<i64>(c)).await, 0);
}

/// A certificate for `localhost` (and its key), made by openssl, in `dir`.
fn localhost_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl makes the test certificate");
    assert!(status.success());
    (cert, key)
}

/// The real binary, serving with SMTP at `smtp_url` and trusting `ca` (rustls-native-certs reads
/// `SSL_CERT_FILE`), so the check of the server's certificate is the production one.
fn serve_with_mail(db: &TestDb, smtp_url: &str, ca: &std::path::Path) -> (StopOnDrop, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("serve")
        .current_dir(ca.parent().unwrap())
        .env("DATABASE_URL", &db.url)
        .env("DASHBOARD_LISTEN", "127.0.0.1:0")
        .env("DASHBOARD_SMTP_URL", smtp_url)
        .env("DASHBOARD_MAIL_FROM", "dashboard@example.com")
        .env("SSL_CERT_FILE", ca)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let address = first.trim().strip_prefix("listening on ").expect(&first).to_owned();
    (StopOnDrop(child), address)
}

async fn mail_goes_over_starttls_and_smtps_with_the_certificate_checked(kind: DbKind) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = localhost_certificate(dir.path());
    let db = TestDb::new(kind);
    crate::cli::ok(crate::cli::dashboard(
        &db,
        &["user", "add", "bob", "--email", "bob@example.com", "--password-stdin"],
        Some(PASSWORD),
    ));
    // The server refuses mail before STARTTLS, so plain smtp:// passing shows the upgrade was taken.
    for (mode, url) in [
        ("starttls", "smtp://localhost:{port}"),
        ("starttls", "smtp://localhost:{port}?tls=required"),
        ("smtps", "smtps://localhost:{port}"),
    ] {
        let sink = SmtpSink::with_tls(mode, cert.clone(), key.clone());
        let (child, address) = serve_with_mail(&db, &url.replace("{port}", &sink.port.to_string()), &cert);
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let browser = Browser { client: client_with(jar.clone()), jar, address };
        assert_eq!(ask_reset(&browser, "bob").await.status(), 200);
        let mail = sink.wait_for(1).await.remove(0);
        assert!(mail.link("/password-reset/confirm").contains("token="), "{mode}");
        drop(child);
    }
    // A certificate the client does not trust: nothing is sent, the error says why. (For carol: bob
    // had his three reset mails this hour.)
    crate::cli::ok(crate::cli::dashboard(
        &db,
        &["user", "add", "carol", "--email", "carol@example.com", "--password-stdin"],
        Some(PASSWORD),
    ));
    let sink = SmtpSink::with_tls("starttls", cert.clone(), key.clone());
    let other = tempfile::tempdir().unwrap();
    let (untrusted, _) = localhost_certificate(other.path());
    let (child, address) = serve_with_mail(&db, &format!("smtp://localhost:{}?tls=required", sink.port), &untrusted);
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    ask_reset(&Browser { client: client_with(jar.clone()), jar, address }, "carol").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let pool = db.pool();
    loop {
        let errors: Vec<Option<String>> = dashboard::db::run(&pool, |c| {
            Ok(mail_outbox::table.filter(mail_outbox::status.eq("waiting")).select(mail_outbox::last_error).load(c)?)
        })
        .await
        .unwrap();
        if let Some(Some(error)) = errors.first() {
            assert!(error.to_lowercase().contains("certificate"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "{errors:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child);
    assert!(sink.received().is_empty());
}
