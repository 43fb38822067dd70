//! A software passkey authenticator for the tests: what a browser and a platform authenticator do
//! together, built by hand so each part can be got wrong on purpose. It keeps discoverable ES256
//! credentials (P-256 keys), writes the client data (type, challenge, origin) and the authenticator
//! data (RP id hash, flags, counter, and at registration the credential and its COSE key), and signs
//! like one. (`webauthn-authenticator-rs`' soft passkey neither keeps resident keys nor returns user
//! handles, so it cannot do a discoverable sign-in.)

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// One credential the authenticator keeps.
#[derive(Clone)]
pub struct Credential {
    pub id: Vec<u8>,
    key: SigningKey,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    counter: u32,
}

/// The authenticator, and the origin its "browser" reports.
pub struct SoftAuthenticator {
    pub origin: String,
    pub credentials: Vec<Credential>,
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

impl SoftAuthenticator {
    pub fn new(origin: &str) -> Self {
        Self { origin: origin.to_owned(), credentials: Vec::new() }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false }),
        )
        .unwrap()
    }

    /// `navigator.credentials.create` with the server's options (`{"publicKey": …}`): the credential
    /// as `static/passkeys.js` sends it.
    pub fn create(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().expect("rp.id").to_owned();
        let user_handle = unb64(pk["user"]["id"].as_str().expect("user.id"));
        let challenge = pk["challenge"].as_str().expect("challenge");
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required", "a passkey is discoverable");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
        // A second passkey on the same authenticator for the same account is refused, as browsers do.
        for excluded in pk["excludeCredentials"].as_array().into_iter().flatten() {
            let id = unb64(excluded["id"].as_str().unwrap());
            assert!(!self.credentials.iter().any(|c| c.id == id), "InvalidStateError: already registered");
        }
        let mut secret = [0u8; 32];
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        rand::rngs::OsRng.fill_bytes(&mut id);
        let key = SigningKey::from_slice(&secret).expect("a P-256 key");
        let point = key.verifying_key().to_sec1_point(false);
        let xy = point.as_bytes();
        let cose = cbor(&ciborium::Value::Map(vec![
            (1.into(), 2.into()),                                       // kty: EC2
            (3.into(), (-7).into()),                                    // alg: ES256
            ((-1).into(), 1.into()),                                    // crv: P-256
            ((-2).into(), ciborium::Value::Bytes(xy[1..33].to_vec())),  // x
            ((-3).into(), ciborium::Value::Bytes(xy[33..65].to_vec())), // y
        ]));
        let mut auth_data = rp_hash(&rp_id);
        auth_data.push(UP | UV | AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose);
        let attestation = cbor(&ciborium::Value::Map(vec![
            ("fmt".into(), "none".into()),
            ("attStmt".into(), ciborium::Value::Map(vec![])),
            ("authData".into(), ciborium::Value::Bytes(auth_data)),
        ]));
        let client_data = self.client_data("webauthn.create", challenge);
        self.credentials.push(Credential { id: id.clone(), key, user_handle, rp_id, counter: 0 });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": { "attestationObject": b64(&attestation), "clientDataJSON": b64(&client_data) },
            "extensions": { "credProps": { "rk": true } },
        })
    }

    /// `navigator.credentials.get` with the server's options: signs with the first credential for the
    /// RP that the options allow (any, for a discoverable sign-in).
    pub fn get(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let allowed: Vec<Vec<u8>> =
            pk["allowCredentials"].as_array().into_iter().flatten().map(|c| unb64(c["id"].as_str().unwrap())).collect();
        let rp_id = pk["rpId"].as_str().expect("rpId").to_owned();
        let index = self
            .credentials
            .iter()
            .position(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .expect("NotAllowedError: no passkey for this site");
        self.assert_with(index, options)
    }

    /// An assertion by credential `index` for these options, whatever they allow.
    pub fn assert_with(&mut self, index: usize, options: &Value) -> Value {
        let challenge = options["publicKey"]["challenge"].as_str().expect("challenge").to_owned();
        let client_data = self.client_data("webauthn.get", &challenge);
        let credential = &mut self.credentials[index];
        credential.counter += 1;
        let mut auth_data = rp_hash(&credential.rp_id);
        auth_data.push(UP | UV);
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = credential.key.sign(&signed);
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&credential.user_handle),
            },
            "extensions": {},
        })
    }
}

fn rp_hash(rp_id: &str) -> Vec<u8> {
    Sha256::digest(rp_id.as_bytes()).to_vec()
}

fn cbor(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// A byte of a base64url field of `credential.response` changed (a bogus signature, tampered data).
pub fn tamper(credential: &mut Value, field: &str) {
    let mut bytes = unb64(credential["response"][field].as_str().unwrap());
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    credential["response"][field] = Value::String(b64(&bytes));
}
