//! The authenticator app end to end in a real browser (the harness of `browser.rs`): set it up by
//! reading the secret off the page as a person would type it into an app, sign out, sign in with the
//! password and a code computed from that secret. Screenshots for the README's tour.

use std::time::Duration;

use dashboard::auth::totp;
use dashboard::db::users::Role;
use fantoccini::Locator;

use crate::browser::{shot, start_browser, wait_for_path};
use crate::helpers::*;
use crate::second_factors::add_passkey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    all(not(dashboard_test_browser), dashboard_no_chromedriver),
    ignore = "chromedriver is not installed (Debian package chromium-driver; see tests/api/browser.rs)"
)]
#[cfg_attr(
    all(not(dashboard_test_browser), not(dashboard_no_chromedriver)),
    ignore = "chromium is not installed (Debian package chromium; see tests/api/browser.rs)"
)]
async fn a_person_sets_up_an_authenticator_app_and_signs_in_with_it_in_a_real_browser() {
    let (_driver, client) = start_browser().await;
    // Addressed by name, where passkeys work: the security page's pictures show them offered.
    let (app, _) = crate::passkeys::passkey_app(DbKind::Sqlite).await;
    let ada = app.create_user("ada", Role::Admin).await;

    let result = async {
        client.goto(&app.url("/login")).await.unwrap();
        client.find(Locator::Id("username")).await.unwrap().send_keys("ada").await.unwrap();
        client.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
        client.find(Locator::Css("form[action='/login'] button[type=submit]")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/").await;

        // The header leads to the security page; from there to the app's set-up.
        crate::browser::follow(&client, "My account", "Security").await;
        wait_for_path(&client, "/account/security").await;
        client.find(Locator::LinkText("Set up an authenticator app")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/account/totp").await;
        let width = client
            .execute("return document.querySelector('.qr svg').getBoundingClientRect().width;", vec![])
            .await
            .unwrap();
        assert!(width.as_f64().unwrap() >= 200.0, "the QR code is drawn large enough to scan: {width}");
        let text = client.find(Locator::Id("totp-secret")).await.unwrap().text().await.unwrap();
        let secret = totp::decode_base32(&text).expect("the page shows a base32 secret");
        shot(&client, "totp-setup").await;
        let code = |steps: i64| totp::code_at_step(&secret, totp::step_at(app.clock.now_ms()) + steps).unwrap();
        client.find(Locator::Id("code")).await.unwrap().send_keys(&code(0)).await.unwrap();
        client.find(Locator::Css("form[action='/account/totp'] button")).await.unwrap().click().await.unwrap();
        let codes = client.find_all(Locator::Css(".recovery-code")).await.unwrap();
        assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
        client.find(Locator::LinkText("I have saved them")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/account/security").await;
        // A passkey added on another device, for the picture (adding one is the WebAuthn script's).
        add_passkey(&app, &ada.id, "pk-laptop", "Work laptop").await;
        client.refresh().await.unwrap();
        assert_eq!(
            client.find(Locator::Css("[data-totp]")).await.unwrap().attr("data-totp").await.unwrap().as_deref(),
            Some("on")
        );
        assert_eq!(client.find_all(Locator::Css("tr[data-passkey-id]")).await.unwrap().len(), 1);
        shot(&client, "account-security").await;

        // Signed out, then in again: the password, then the app's next code.
        client.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/login").await;
        app.clock.advance(Duration::from_secs(totp::STEP_SECONDS));
        client.find(Locator::Id("username")).await.unwrap().send_keys("ada").await.unwrap();
        client.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
        client.find(Locator::Css("form[action='/login'] button[type=submit]")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/login/mfa").await;
        assert_eq!(app.session_rows().await, 0, "no session before the second step");
        shot(&client, "login-mfa").await;
        client.find(Locator::Id("code")).await.unwrap().send_keys(&code(0)).await.unwrap();
        client.find(Locator::Css("form[action='/login/mfa'] button")).await.unwrap().click().await.unwrap();
        wait_for_path(&client, "/").await;
        let who = client.find(Locator::Id("username")).await.unwrap().text().await.unwrap();
        assert_eq!(who, "ada");
        client.goto(&app.url("/account/sessions")).await.unwrap();
        let with = client.find(Locator::Css("tr[data-current='true'] [data-auth-method]")).await.unwrap();
        assert_eq!(with.attr("data-auth-method").await.unwrap().as_deref(), Some("totp"));
    }
    .await;
    client.close().await.unwrap();
    result
}
