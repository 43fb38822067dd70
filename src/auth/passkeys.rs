//! Passkeys (WebAuthn): the relying party, bound to `DASHBOARD_WEBAUTHN_RP_ID` (by default the public
//! URL's host) and to the public URL's origin, through `webauthn-rs`.
//!
//! Every ceremony has two requests: one asks the browser for a passkey (its options carry a fresh
//! challenge), the other brings the browser's answer. What `webauthn-rs` needs in between (the
//! challenge, the allowed credentials) is kept on the server in `webauthn_ceremonies`
//! ([`crate::db::ceremonies`]), single-use, bound to the browser, and for [`CEREMONY_LIFETIME`].
//!
//! Passkeys here are **discoverable** credentials with **user verification**: the authenticator keeps
//! the account on itself and checks a PIN or a biometric, so a passkey alone is two factors and can
//! sign in without a username. (`webauthn-rs`' passkey registration asks for a non-resident key, so the
//! options are changed to require one; its discoverable sign-in asks browsers for conditional
//! mediation, an autofill-only prompt, and here a button asks instead, so that is taken out.)
//!
//! Browsers offer passkeys only to a page whose host is a domain name (never an IP address) and that
//! is a secure context (`https://`, or `http://localhost`). When the public URL is not such a place
//! and no relying-party id was configured, passkeys are [`PasskeySupport::Off`] with the reason, and
//! everything else works; a configured id that cannot work stops the start instead.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::*;
use webauthn_rs_proto::{ResidentKeyRequirement, UserVerificationPolicy};

/// How long a ceremony may take from the request that starts it to the browser's answer (the
/// browser is given the same time for the person to use their authenticator).
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The longest passkey name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// Whether this server can offer passkeys.
pub enum PasskeySupport {
    On(RelyingParty),
    /// Why not, in words for the person who tries (and the start-up log).
    Off(String),
}

impl PasskeySupport {
    /// From the configured relying-party id (`None`: the public URL's host) and the public URL.
    /// An explicitly configured id that cannot work is an error naming the variable; an unconfigured
    /// default that cannot work turns passkeys off.
    pub fn new(configured_rp_id: Option<&str>, public_url: &str) -> anyhow::Result<Self> {
        let url = Url::parse(public_url).map_err(|e| anyhow::anyhow!("the public URL `{public_url}`: {e}"))?;
        let off = |why: String| -> anyhow::Result<Self> {
            match configured_rp_id {
                Some(_) => anyhow::bail!("invalid DASHBOARD_WEBAUTHN_RP_ID: {why}"),
                None => Ok(Self::Off(why)),
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(host)) => host.to_ascii_lowercase(),
            _ => {
                return off(format!(
                    "Passkeys are not available here: this dashboard is addressed by an IP address ({public_url}), and \
                     browsers offer passkeys only to a domain name. The administrator can set DASHBOARD_PUBLIC_URL to \
                     one, such as http://localhost:{}.",
                    url.port_or_known_default().unwrap_or(80)
                ))
            }
        };
        let local = host == "localhost" || host.ends_with(".localhost");
        if url.scheme() != "https" && !local {
            return off(format!(
                "Passkeys are not available here: browsers offer them only on secure pages, and this dashboard is \
                 served over plain http ({public_url}). The administrator can serve it over https."
            ));
        }
        let rp_id = configured_rp_id.map(str::to_owned).unwrap_or(host);
        // The origin, without a path: what browsers put in their signed client data.
        let origin = Url::parse(&url.origin().ascii_serialization())?;
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| anyhow::anyhow!("invalid DASHBOARD_WEBAUTHN_RP_ID `{rp_id}` for {origin}: {e}"))?
            .rp_name("Dashboard")
            .timeout(CEREMONY_LIFETIME)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up passkeys for `{rp_id}`: {e}"))?;
        Ok(Self::On(RelyingParty { webauthn, rp_id }))
    }

    /// The relying party, or why there is none.
    pub fn relying_party(&self) -> Result<&RelyingParty, &str> {
        match self {
            Self::On(rp) => Ok(rp),
            Self::Off(why) => Err(why),
        }
    }

    pub fn is_on(&self) -> bool {
        matches!(self, Self::On(_))
    }
}

/// Why a passkey was not accepted. The text is for the audit log; the person is told less.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the credential names no user")]
    NoUserHandle,
    #[error("an unknown credential")]
    UnknownCredential,
    #[error("a credential of another user")]
    OtherUsersCredential,
    #[error("the request expired or was already used")]
    NoCeremony,
    #[error("the authenticator would not keep the passkey on itself")]
    NotDiscoverable,
    #[error("verification failed: {0}")]
    Verification(WebauthnError),
    #[error("the passkey changed meanwhile")]
    Changed,
    #[error("the account is disabled")]
    Disabled,
}

/// What a ceremony keeps on the server between its two requests (the `state` column, as JSON).
#[derive(Serialize, Deserialize)]
pub enum CeremonyState {
    /// Adding a passkey with this name.
    Register { name: String, state: PasskeyRegistration },
    /// Signing in with a passkey alone: any user's.
    SignIn(DiscoverableAuthentication),
    /// Confirming a known user with one of their passkeys (the second step, re-authentication).
    Verify(PasskeyAuthentication),
}

/// The relying party: `webauthn-rs` set up for this server's id and origin.
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
}

impl RelyingParty {
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// The WebAuthn user handle of a user: derived from the user's id (16 bytes of a SHA-256), so
    /// nothing is stored for it and it names no username. A discoverable passkey hands it back.
    pub fn user_handle(user_id: &str) -> Uuid {
        let digest = Sha256::digest(format!("dashboard passkey user handle\0{user_id}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    }

    /// Options for the browser to create a passkey for `user_id` (not again on an authenticator
    /// that already holds one of `existing`), and the state to keep.
    pub fn start_registration(
        &self,
        user_id: &str,
        username: &str,
        existing: Vec<CredentialID>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), WebauthnError> {
        let exclude = (!existing.is_empty()).then_some(existing);
        let (mut options, state) =
            self.webauthn.start_passkey_registration(Self::user_handle(user_id), username, username, exclude)?;
        // A passkey that can sign in alone is kept on the authenticator (discoverable).
        let selection = options.public_key.authenticator_selection.get_or_insert_with(Default::default);
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
        selection.user_verification = UserVerificationPolicy::Required;
        Ok((options, state))
    }

    /// Checks the browser's answer to [`Self::start_registration`]: the new passkey.
    pub fn finish_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, Refusal> {
        // The browser says whether the authenticator kept the key on itself (unsigned, so only a
        // "no" is believed: a passkey that cannot be discovered could never sign in alone).
        if answer.extensions.cred_props.as_ref().and_then(|p| p.rk) == Some(false) {
            return Err(Refusal::NotDiscoverable);
        }
        self.webauthn.finish_passkey_registration(answer, state).map_err(Refusal::Verification)
    }

    /// Options for the browser to sign in with any passkey of this site, and the state to keep.
    pub fn start_sign_in(&self) -> Result<(RequestChallengeResponse, DiscoverableAuthentication), WebauthnError> {
        let (mut options, state) = self.webauthn.start_discoverable_authentication()?;
        // Asked for by a button, not offered in an autofill list.
        options.mediation = None;
        Ok((options, state))
    }

    /// Which user and credential an answer to [`Self::start_sign_in`] claims (not yet verified).
    pub fn identify(&self, answer: &PublicKeyCredential) -> Result<(Uuid, String), Refusal> {
        let (user, credential_id) =
            self.webauthn.identify_discoverable_authentication(answer).map_err(|_| Refusal::NoUserHandle)?;
        Ok((user, credential_key(credential_id)))
    }

    /// Verifies an answer to [`Self::start_sign_in`] against the stored passkey it names.
    pub fn finish_sign_in(
        &self,
        answer: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, Refusal> {
        self.webauthn.finish_discoverable_authentication_v2(answer, state, passkey).map_err(Refusal::Verification)
    }

    /// Options for the browser to confirm a known user with one of `passkeys`.
    pub fn start_verification(
        &self,
        passkeys: &[Passkey],
    ) -> Result<(RequestChallengeResponse, PasskeyAuthentication), WebauthnError> {
        self.webauthn.start_passkey_authentication(passkeys)
    }

    /// Verifies an answer to [`Self::start_verification`] (the credential must be one it allowed).
    pub fn finish_verification(
        &self,
        answer: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<AuthenticationResult, Refusal> {
        self.webauthn.finish_passkey_authentication(answer, state).map_err(Refusal::Verification)
    }
}

/// How a credential id is stored and looked up (`passkeys.credential_id`): base64url, no padding.
pub fn credential_key(credential_id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential_id)
}

/// A passkey name as submitted: trimmed, 1–[`NAME_MAX_CHARS`] characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the passkey a name, such as the device it is on.".into());
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(format!("A passkey name is at most {NAME_MAX_CHARS} characters long."));
    }
    if name.chars().any(char::is_control) {
        return Err("A passkey name cannot hold control characters.".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_turns_passkeys_off_unless_an_id_was_configured() {
        let off = PasskeySupport::new(None, "http://127.0.0.1:8080").unwrap();
        let why = off.relying_party().err().unwrap();
        assert!(why.contains("IP address") && why.contains("http://localhost:8080"), "{why}");
        assert!(!PasskeySupport::new(None, "http://[::1]:8080").unwrap().is_on());
        let err = PasskeySupport::new(Some("localhost"), "http://127.0.0.1:8080").err().unwrap();
        assert!(err.to_string().contains("DASHBOARD_WEBAUTHN_RP_ID"), "{err}");
    }

    #[test]
    fn plain_http_works_only_on_localhost() {
        assert_eq!(
            PasskeySupport::new(None, "http://localhost:8080").unwrap().relying_party().unwrap().rp_id(),
            "localhost"
        );
        assert!(PasskeySupport::new(None, "http://dash.localhost:8080").unwrap().is_on());
        let why = PasskeySupport::new(None, "http://dash.example.com").unwrap();
        assert!(why.relying_party().err().unwrap().contains("https"));
        let rp = PasskeySupport::new(Some("example.com"), "https://dash.example.com/base").unwrap();
        assert_eq!(rp.relying_party().unwrap().rp_id(), "example.com");
    }

    #[test]
    fn registration_asks_for_a_discoverable_passkey_with_user_verification() {
        let support = PasskeySupport::new(None, "https://dash.example.com").unwrap();
        let rp = support.relying_party().unwrap();
        let (options, _) = rp.start_registration("user-1", "ada", Vec::new()).unwrap();
        let json = serde_json::to_value(&options).unwrap();
        let selection = &json["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required", "{json}");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(json["publicKey"]["rp"]["id"], "dash.example.com");
        let (options, _) = rp.start_sign_in().unwrap();
        let json = serde_json::to_value(&options).unwrap();
        assert!(json.get("mediation").is_none(), "{json}");
        assert_eq!(json["publicKey"]["userVerification"], "required");
    }

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(RelyingParty::user_handle("a"), RelyingParty::user_handle("a"));
        assert_ne!(RelyingParty::user_handle("a"), RelyingParty::user_handle("b"));
    }

    #[test]
    fn names_are_trimmed_required_and_bounded() {
        assert_eq!(valid_name("  Laptop  ").unwrap(), "Laptop");
        assert!(valid_name("   ").is_err());
        assert!(valid_name(&"é".repeat(64)).is_ok());
        assert!(valid_name(&"é".repeat(65)).is_err());
        assert!(valid_name("a\u{7}b").is_err());
    }
}
