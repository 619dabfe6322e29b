//! Ed25519 signing keys derived from the master key, and the [`TokenSigner`] that
//! signs access tokens (JWT, `alg: EdDSA`) and codes (`signedCode`) with them.
//!
//! Key version N is HKDF-SHA-256(master key, `tessera/signing/vN`); its 32 bytes
//! are the Ed25519 secret key seed, so no private key is ever stored. Version N
//! (`TESSERA_SIGNING_KEY_VERSION`) signs; versions N and N-1 are published in the
//! JWKS and accepted when checking signed codes. Rotating means bumping N on every
//! replica: what version N-1 signed stays verifiable for one more rotation period,
//! which therefore must exceed `TESSERA_TOKEN_TTL` (and the useful life of a
//! signed code).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tessera_app::model::{AccessToken, Grant};
use tessera_app::ports::TokenSigner;
use tessera_domain::{Code, ProgramId};

use crate::keys::{derive_bytes, MasterKey};

/// The prefix of what a code's signature covers: `tessera-code-v1:<programId>:<code>`.
const CODE_MESSAGE_PREFIX: &str = "tessera-code-v1";
/// Random bytes in a token's `jti`: 128 bits.
const JTI_BYTES: usize = 16;
/// Unpadded base64url length of a 64-byte signature.
const SIGNATURE_B64_LEN: usize = 86;

/// The HKDF label of signing key `version`.
fn label(version: u32) -> String {
    format!("tessera/signing/v{version}")
}

/// One version of the signing key, with its published identity.
struct VersionedKey {
    version: u32,
    kid: String,
    key: SigningKey,
}

impl VersionedKey {
    fn derive(master: &MasterKey, version: u32) -> Self {
        let key = SigningKey::from_bytes(&derive_bytes(master, label(version).as_bytes()));
        Self {
            version,
            kid: kid(version, &key.verifying_key()),
            key,
        }
    }

    fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl fmt::Debug for VersionedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedKey")
            .field("version", &self.version)
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// `tessera-v{N}-` and the first 8 hex digits of SHA-256 of the public key.
fn kid(version: u32, public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("tessera-v{version}-{short}")
}

/// Signs with the current key version; verifies with every published one.
pub struct Signer {
    issuer: String,
    ttl_seconds: u32,
    /// The version that signs.
    current: VersionedKey,
    /// The version before it, still published and accepted; none at version 1.
    previous: Option<VersionedKey>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    /// The resource the token is for: the program's objectId.
    aud: &'a str,
    sub: &'a str,
    tid: &'a str,
    pid: &'a str,
    obj: &'a str,
    grp: &'a [String],
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

fn encode_json(value: &impl Serialize) -> String {
    // Plain structs of strings and numbers always serialize.
    let bytes =
        serde_json::to_vec(value).unwrap_or_else(|_| unreachable!("a JWT part always serializes"));
    B64URL.encode(bytes)
}

fn code_message(program: &ProgramId, code: &str) -> String {
    format!("{CODE_MESSAGE_PREFIX}:{}:{code}", program.as_str())
}

impl Signer {
    /// The signer for key `version` (≥ 1): it signs with that version and also
    /// publishes and accepts `version - 1` when that is ≥ 1.
    /// Version 0 does not exist: it is taken as 1 (settings refuse it anyway).
    pub fn new(master: &MasterKey, version: u32, issuer: String, ttl_seconds: u32) -> Self {
        let version = version.max(1);
        Self {
            issuer,
            ttl_seconds,
            current: VersionedKey::derive(master, version),
            previous: (version > 1).then(|| VersionedKey::derive(master, version - 1)),
        }
    }

    /// The published keys, newest first.
    fn keys(&self) -> impl Iterator<Item = &VersionedKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }

    /// The `kid` of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// The JSON Web Key Set of the published keys, newest first.
    pub fn jwks_json(&self) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys()
            .map(|key| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": key.kid,
                    "x": B64URL.encode(key.public().as_bytes()),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn sign(&self, message: &[u8]) -> Signature {
        self.current.key.sign(message)
    }
}

impl TokenSigner for Signer {
    fn access_token(&self, grant: &Grant, issued_at: DateTime<Utc>) -> AccessToken {
        let header = encode_json(&Header {
            alg: "EdDSA",
            typ: "JWT",
            kid: self.current_kid(),
        });
        let mut jti = [0u8; JTI_BYTES];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut jti);
        let iat = issued_at.timestamp();
        let payload = encode_json(&Claims {
            iss: &self.issuer,
            aud: &grant.object_id,
            sub: grant.ticket_id.as_str(),
            tid: grant.tenant_id.as_str(),
            pid: grant.program_id.as_str(),
            obj: &grant.object_id,
            grp: &grant.group_addresses,
            iat,
            nbf: iat,
            exp: iat.saturating_add(i64::from(self.ttl_seconds)),
            jti: B64URL.encode(jti),
        });
        let signing_input = format!("{header}.{payload}");
        let signature = B64URL.encode(self.sign(signing_input.as_bytes()).to_bytes());
        AccessToken::new(format!("{signing_input}.{signature}"), self.ttl_seconds)
    }

    fn sign_code(&self, program: &ProgramId, code: &Code) -> String {
        B64URL.encode(
            self.sign(code_message(program, code.expose_secret()).as_bytes())
                .to_bytes(),
        )
    }

    fn verify_code(&self, program: &ProgramId, code: &str, signature: &str) -> bool {
        if signature.len() != SIGNATURE_B64_LEN {
            return false;
        }
        let Some(bytes) = B64URL
            .decode(signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
        else {
            return false;
        };
        let signature = Signature::from_bytes(&bytes);
        let message = code_message(program, code);
        self.keys().any(|key| {
            key.public()
                .verify_strict(message.as_bytes(), &signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::Value;
    use tessera_domain::{Alphabet, TenantId, TicketId, TicketLength};

    use super::*;
    use crate::jwt::{verify_token, VerifyError};

    const TTL: u32 = 600;

    fn master() -> MasterKey {
        MasterKey([9; 32])
    }

    fn signer(version: u32) -> Signer {
        Signer::new(
            &master(),
            version,
            "https://tickets.example.com".to_owned(),
            TTL,
        )
    }

    fn claims() -> Grant {
        Grant {
            ticket_id: TicketId::generate(),
            redemption_id: tessera_domain::RedemptionId::generate(),
            tenant_id: TenantId::generate(),
            program_id: ProgramId::generate(),
            remaining: 1,
            object_id: "iq__3ax1".to_owned(),
            group_addresses: vec!["0x96bb".to_owned(), "0x01ab".to_owned()],
            payload: None,
        }
    }

    fn issued_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
            .single()
            .expect("a time")
    }

    fn jwks(signer: &Signer) -> Value {
        serde_json::from_str(&signer.jwks_json()).expect("the JWKS is JSON")
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&B64URL.decode(part).expect("base64url")).expect("JSON")
    }

    /// Replaces one of the token's three parts.
    fn with_part(token: &str, index: usize, part: &str) -> String {
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[index] = part;
        parts.join(".")
    }

    #[test]
    fn a_token_round_trips_and_verifies_with_the_published_key() {
        let signer = signer(3);
        let claims = claims();
        let token = signer.access_token(&claims, issued_at());
        assert_eq!(token.expires_in_seconds(), TTL);
        let iat = issued_at().timestamp();

        let verified =
            verify_token(&jwks(&signer), token.expose_secret(), iat, 0).expect("verifies");
        assert_eq!(verified.header["alg"], "EdDSA");
        assert_eq!(verified.header["typ"], "JWT");
        assert_eq!(verified.header["kid"], signer.current_kid());
        let c = &verified.claims;
        assert_eq!(c["iss"], "https://tickets.example.com");
        assert_eq!(c["sub"], claims.ticket_id.as_str());
        assert_eq!(c["tid"], claims.tenant_id.as_str());
        assert_eq!(c["pid"], claims.program_id.as_str());
        assert_eq!(c["obj"], "iq__3ax1");
        assert_eq!(c["grp"], serde_json::json!(["0x96bb", "0x01ab"]));
        assert_eq!(c["iat"], iat);
        assert_eq!(c["nbf"], iat);
        assert_eq!(c["aud"], "iq__3ax1");
        assert_eq!(c["exp"], iat + i64::from(TTL));
        let jti = B64URL
            .decode(c["jti"].as_str().expect("jti is a string"))
            .expect("jti is base64url");
        assert!(jti.len() * 8 >= 128);
        assert_ne!(
            decode_part(
                signer
                    .access_token(&claims, issued_at())
                    .expose_secret()
                    .split('.')
                    .nth(1)
                    .expect("payload")
            )["jti"],
            c["jti"],
            "each token has its own jti"
        );

        // The same check by hand, with nothing but the JWKS's `x`.
        let keys = jwks(&signer);
        let x = B64URL
            .decode(keys["keys"][0]["x"].as_str().expect("x"))
            .expect("x is base64url");
        let public =
            VerifyingKey::from_bytes(&x.try_into().expect("32 bytes")).expect("a public key");
        let (signing_input, signature) =
            token.expose_secret().rsplit_once('.').expect("three parts");
        let signature: [u8; 64] = B64URL
            .decode(signature)
            .expect("base64url")
            .try_into()
            .expect("64 bytes");
        public
            .verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
            .expect("the signature verifies");
    }

    #[test]
    fn times_are_checked() {
        let signer = signer(1);
        let claims = claims();
        let token = signer
            .access_token(&claims, issued_at())
            .expose_secret()
            .to_owned();
        let iat = issued_at().timestamp();
        let keys = jwks(&signer);
        assert!(verify_token(&keys, &token, iat + i64::from(TTL) - 1, 0).is_ok());
        assert_eq!(
            verify_token(&keys, &token, iat + i64::from(TTL), 0),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify_token(&keys, &token, iat - 120, 60),
            Err(VerifyError::NotYetValid)
        );
    }

    #[test]
    fn a_tampered_token_is_rejected() {
        let signer = signer(2);
        let claims = claims();
        let token = signer
            .access_token(&claims, issued_at())
            .expose_secret()
            .to_owned();
        let now = issued_at().timestamp();
        let keys = jwks(&signer);

        let mut payload = decode_part(token.split('.').nth(1).expect("payload"));
        payload["obj"] = Value::from("iq__someone-else");
        let forged = with_part(&token, 1, &B64URL.encode(payload.to_string()));
        assert_eq!(
            verify_token(&keys, &forged, now, 0),
            Err(VerifyError::BadSignature)
        );

        let signature = token.split('.').nth(2).expect("signature");
        let mut bytes = B64URL.decode(signature).expect("base64url");
        bytes[10] ^= 1;
        let flipped = with_part(&token, 2, &B64URL.encode(&bytes));
        assert_eq!(
            verify_token(&keys, &flipped, now, 0),
            Err(VerifyError::BadSignature)
        );

        let other = Signer::new(&MasterKey([8; 32]), 2, "x".to_owned(), TTL);
        assert_eq!(
            verify_token(&jwks(&other), &token, now, 0),
            Err(VerifyError::UnknownKey),
            "another master key makes another kid"
        );

        for malformed in ["", "a.b", "a.b.c.d", "..", "%%%.%%%.%%%"] {
            assert!(
                verify_token(&keys, malformed, now, 0).is_err(),
                "{malformed}"
            );
        }
        let none_alg = with_part(&token, 0, &B64URL.encode(r#"{"alg":"none","kid":"x"}"#));
        assert_eq!(
            verify_token(&keys, &none_alg, now, 0),
            Err(VerifyError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn the_kid_names_the_version_and_the_public_key() {
        let signer = signer(7);
        let kid = signer.current_kid();
        let suffix = kid.strip_prefix("tessera-v7-").expect("version prefix");
        assert_eq!(suffix.len(), 8);
        assert!(suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let keys = jwks(&signer);
        let x = B64URL
            .decode(keys["keys"][0]["x"].as_str().expect("x"))
            .expect("x is base64url");
        let digest = Sha256::digest(&x);
        assert_eq!(
            suffix,
            format!(
                "{:02x}{:02x}{:02x}{:02x}",
                digest[0], digest[1], digest[2], digest[3]
            )
        );
    }

    #[test]
    fn the_jwks_publishes_the_current_and_previous_versions_newest_first() {
        let keys = jwks(&signer(5));
        let keys = keys["keys"].as_array().expect("a list");
        assert_eq!(keys.len(), 2);
        for key in keys {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["alg"], "EdDSA");
            assert_eq!(key["use"], "sig");
            let x = key["x"].as_str().expect("x");
            assert!(!x.contains('='), "unpadded");
            assert_eq!(B64URL.decode(x).expect("base64url").len(), 32);
        }
        assert!(keys[0]["kid"]
            .as_str()
            .is_some_and(|kid| kid.starts_with("tessera-v5-")));
        assert!(keys[1]["kid"]
            .as_str()
            .is_some_and(|kid| kid.starts_with("tessera-v4-")));
        assert_eq!(jwks(&signer(1))["keys"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn keys_depend_on_the_master_key_and_the_version() {
        let one = signer(1);
        assert_eq!(one.current_kid(), signer(1).current_kid(), "deterministic");
        assert_ne!(
            one.current_kid().get(11..),
            signer(2).current_kid().get(11..)
        );
        let other = Signer::new(&MasterKey([1; 32]), 1, "x".to_owned(), TTL);
        assert_ne!(one.current_kid(), other.current_kid());
    }

    #[test]
    fn signatures_survive_one_rotation_but_not_two() {
        let program = ProgramId::generate();
        let code = Code::generate(Alphabet::Alphanumeric, TicketLength::DEFAULT);
        let claims = claims();
        let now = issued_at().timestamp();
        let (v1, v2, v3) = (signer(1), signer(2), signer(3));
        let signature = v1.sign_code(&program, &code);
        let token = v1
            .access_token(&claims, issued_at())
            .expose_secret()
            .to_owned();

        assert!(v1.verify_code(&program, code.expose_secret(), &signature));
        assert!(
            v2.verify_code(&program, code.expose_secret(), &signature),
            "N-1"
        );
        assert!(verify_token(&jwks(&v2), &token, now, 0).is_ok(), "N-1");
        assert!(
            !v3.verify_code(&program, code.expose_secret(), &signature),
            "N-2"
        );
        assert_eq!(
            verify_token(&jwks(&v3), &token, now, 0),
            Err(VerifyError::UnknownKey),
            "N-2"
        );
        // What the new version signs verifies too.
        assert!(v2.verify_code(
            &program,
            code.expose_secret(),
            &v2.sign_code(&program, &code)
        ));
    }

    #[test]
    fn a_code_signature_covers_exactly_the_documented_message() {
        let signer = signer(1);
        let program = ProgramId::generate();
        let code = Code::generate(Alphabet::Numeric, TicketLength::DEFAULT);
        let signature = signer.sign_code(&program, &code);
        assert_eq!(signature.len(), SIGNATURE_B64_LEN);

        let public = VerifyingKey::from_bytes(
            &B64URL
                .decode(jwks(&signer)["keys"][0]["x"].as_str().expect("x"))
                .expect("base64url")
                .try_into()
                .expect("32 bytes"),
        )
        .expect("a public key");
        let bytes: [u8; 64] = B64URL
            .decode(&signature)
            .expect("base64url")
            .try_into()
            .expect("64 bytes");
        let message = format!(
            "tessera-code-v1:{}:{}",
            program.as_str(),
            code.expose_secret()
        );
        public
            .verify_strict(message.as_bytes(), &Signature::from_bytes(&bytes))
            .expect("signed exactly that message");

        let other_code = format!("{}0", code.expose_secret());
        assert!(!signer.verify_code(&program, &other_code, &signature));
        assert!(!signer.verify_code(&ProgramId::generate(), code.expose_secret(), &signature));
    }

    #[test]
    fn malformed_signatures_are_rejected() {
        let signer = signer(2);
        let program = ProgramId::generate();
        let code = Code::generate(Alphabet::Numeric, TicketLength::DEFAULT);
        let good = signer.sign_code(&program, &code);
        let padded = format!("{good}==");
        let standard_alphabet = good.replace('-', "+").replace('_', "/");
        let mut last_bits = good.clone().into_bytes();
        // The last character carries 4 unused bits: a non-zero one is not canonical.
        if let Some(last) = last_bits.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        let last_bits = String::from_utf8(last_bits).expect("ascii");
        let long = "A".repeat(100_000);
        let non_ascii = "é".repeat(43);
        for bad in [
            "",
            "A",
            "not base64 at all!",
            &good[..85],
            &format!("{good}A"),
            &padded,
            &long,
            &non_ascii,
            &B64URL.encode([0u8; 64]),
            &B64URL.encode([0u8; 63]),
            &last_bits,
        ] {
            assert!(
                !signer.verify_code(&program, code.expose_secret(), bad),
                "{bad:.20}"
            );
        }
        if standard_alphabet != good {
            assert!(!signer.verify_code(&program, code.expose_secret(), &standard_alphabet));
        }
        assert!(signer.verify_code(&program, code.expose_secret(), &good));
    }

    #[test]
    fn debug_output_redacts_the_keys() {
        let signer = signer(2);
        let seed = derive_bytes(&master(), label(2).as_bytes());
        let shown = format!("{signer:?}");
        assert!(shown.contains("<redacted>"));
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&B64URL.encode(seed)));
        assert!(!shown.contains(&hex));
        assert!(!shown.contains("SigningKey"));
    }
}
