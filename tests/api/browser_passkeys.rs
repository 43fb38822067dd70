//! Passkeys in a real browser with real WebAuthn: Chromium's virtual authenticator (the W3C
//! WebDriver extension: a CTAP2 platform authenticator that keeps resident keys and verifies its
//! user), driven through `static/passkeys.js` on the real pages: added on `/account/security`, used
//! alone on `/login` (picked from the username field's autofill), as the second step on `/login/mfa`, to confirm who you are on `/reauth`, then
//! removed. The app's public URL is
//! `http://localhost:PORT`: Chromium offers passkeys only to a domain name in a secure context.
//!
//! Ignored, like `browser.rs`, when Chromium or chromedriver was not installed as the tests were built.

use dashboard::db::schema::{passkeys, sessions};
use dashboard::db::users::Role;
use diesel::prelude::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};

use crate::browser::{shot, start_browser, wait_for_path};
use crate::helpers::*;
use crate::passkeys::passkey_app;

/// `POST /session/{id}/webauthn/authenticator`: adds a virtual authenticator to the browser.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// `POST /session/{id}/webauthn/authenticator/{authenticator}/uv`: whether the virtual
/// authenticator verifies its user.
#[derive(Debug)]
struct SetUserVerified {
    authenticator: String,
    verified: bool,
}

impl WebDriverCompatibleCommand for SetUserVerified {
    fn endpoint(&self, base: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base.join(&format!("session/{session}/webauthn/authenticator/{}/uv", self.authenticator))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(serde_json::json!({ "isUserVerified": self.verified }).to_string()))
    }
}

async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

async fn sign_in_with_password(client: &Client) {
    client.find(Locator::Id("username")).await.unwrap().send_keys("ada").await.unwrap();
    client.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    click(client, Locator::Css("form[action='/login'] button[type=submit]")).await;
}

async fn sign_out(client: &Client) {
    click(client, Locator::Css("form[action='/logout'] button")).await;
    wait_for_path(client, "/login").await;
}

async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// Waits until the element `css` shows some text (the script's message).
async fn wait_for_text(client: &Client, css: &str) -> String {
    for _ in 0..50 {
        if let Ok(el) = client.find(Locator::Css(css)).await {
            let text = el.text().await.unwrap_or_default();
            if !text.is_empty() {
                return text;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no text in {css}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    all(not(dashboard_test_browser), dashboard_no_chromedriver),
    ignore = "chromedriver is not installed (Debian package chromium-driver; see tests/api/browser.rs)"
)]
#[cfg_attr(
    all(not(dashboard_test_browser), not(dashboard_no_chromedriver)),
    ignore = "chromium is not installed (Debian package chromium; see tests/api/browser.rs)"
)]
async fn a_passkey_is_added_signs_in_alone_and_after_a_password_confirms_who_you_are_and_is_removed_in_a_real_browser()
{
    let (_driver, client) = start_browser().await;
    let added = client.issue_cmd(AddVirtualAuthenticator).await.expect("a virtual authenticator");
    let authenticator = added.as_str().expect("the authenticator's id").to_owned();
    let (app, _) = passkey_app(DbKind::Sqlite).await;
    app.create_user("ada", Role::User).await;
    let base = app.url("");

    let result = async {
        client.goto(&format!("{base}/login")).await.unwrap();
        let field = client.find(Locator::Id("username")).await.unwrap();
        assert_eq!(field.attr("autocomplete").await.unwrap().as_deref(), Some("username webauthn"), "autofill");
        sign_in_with_password(&client).await;
        wait_for_path(&client, "/").await;

        // Add a passkey on the security page.
        client.goto(&format!("{base}/account/security")).await.unwrap();
        client.find(Locator::Id("passkey-name")).await.unwrap().send_keys("This laptop").await.unwrap();
        click(&client, Locator::Id("add-passkey")).await;
        wait_for_path(&client, "/account/security?done=passkey-added").await;
        assert_eq!(text_of(&client, "tr[data-passkey-id] td[data-label=Name]").await, "This laptop");
        shot(&client, "passkeys").await;

        // Signed out, the username field offers the passkey (autofill, conditional mediation):
        // picking it signs in, no username, no password. Chromium's virtual authenticator picks it
        // as soon as the page asks, so the sign-out lands signed in again.
        click(&client, Locator::Css("form[action='/logout'] button")).await;
        wait_for_path(&client, "/").await;
        assert_eq!(text_of(&client, "#username").await, "ada");
        let methods: Vec<String> = app.with_db(|c| sessions::table.select(sessions::auth_method).load(c)).await;
        assert_eq!(methods, ["passkey"]);

        // With the authenticator refusing to verify its user, autofill signs nobody in; the
        // password alone no longer signs in either: the passkey is the second step.
        client.issue_cmd(SetUserVerified { authenticator: authenticator.clone(), verified: false }).await.unwrap();
        sign_out(&client).await;
        sign_in_with_password(&client).await;
        wait_for_path(&client, "/login/mfa").await;
        assert_eq!(app.session_rows().await, 0);
        client.issue_cmd(SetUserVerified { authenticator: authenticator.clone(), verified: true }).await.unwrap();
        click(&client, Locator::Id("passkey-verify")).await;
        wait_for_path(&client, "/").await;
        assert_eq!(text_of(&client, "#username").await, "ada");

        // Later, adding another is a sensitive action: the script follows the answer to /reauth,
        // where the passkey confirms who she is and leads back.
        app.clock.advance(std::time::Duration::from_secs(16 * 60));
        client.goto(&format!("{base}/account/security")).await.unwrap();
        client.find(Locator::Id("passkey-name")).await.unwrap().send_keys("Another").await.unwrap();
        click(&client, Locator::Id("add-passkey")).await;
        wait_for_path(&client, "/reauth?next=%2Faccount%2Fsecurity").await;
        click(&client, Locator::Id("passkey-verify")).await;
        wait_for_path(&client, "/account/security").await;

        // Removed, it signs in no more, and the page says so.
        click(&client, Locator::Css("tr[data-passkey-id] button.danger")).await;
        wait_for_path(&client, "/account/security?done=passkey-deleted&n=0").await;
        assert!(client.find_all(Locator::Css("tr[data-passkey-id]")).await.unwrap().is_empty());
        assert_eq!(app.with_db(|c| passkeys::table.count().get_result::<i64>(c)).await, 0);
        sign_out(&client).await;
        click(&client, Locator::Id("passkey-sign-in")).await;
        let message = wait_for_text(&client, ".passkey-message").await;
        assert!(message.contains("not accepted"), "{message}");
        assert_eq!(app.session_rows().await, 0);
    }
    .await;
    client.close().await.unwrap();
    result
}
