//! Webhook secrets at rest and the signatures made with them ([`WebhookKeys`], the
//! app's `WebhookCrypto`). A secret is sealed with XChaCha20-Poly1305 under a key
//! derived from the master key, so a database dump alone neither reveals it nor
//! lets anyone forge a delivery's signature.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_app::webhooks::{SealedSecret, WebhookCrypto};
use tessera_domain::WebhookSecret;

use crate::keys::{derive_bytes, MasterKey};

const WEBHOOK_SECRET_LABEL: &[u8] = b"tessera/webhook-secret/v1";
/// The first byte of every sealed secret, so a later format can be told apart.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that seals webhook secrets. Holds no master key itself.
#[derive(Clone)]
pub struct WebhookKeys {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKeys(<redacted>)")
    }
}

impl WebhookKeys {
    pub fn derive(master: &MasterKey) -> Self {
        let key = derive_bytes(master, WEBHOOK_SECRET_LABEL);
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }
}

impl WebhookCrypto for WebhookKeys {
    fn seal(&self, secret: &WebhookSecret) -> SealedSecret {
        // 192-bit random nonces: collisions are negligible without any counter.
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: secret.expose_secret().as_bytes(),
            aad: WEBHOOK_SECRET_LABEL,
        };
        // Encryption only fails for messages beyond 256 GiB.
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .unwrap_or_else(|_| unreachable!("a webhook secret is far below the AEAD's limit"));
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        SealedSecret(sealed)
    }

    fn open(&self, sealed: &SealedSecret) -> Option<WebhookSecret> {
        let (format, rest) = sealed.0.split_first()?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let clear = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: WEBHOOK_SECRET_LABEL,
                },
            )
            .ok()?;
        String::from_utf8(clear)
            .ok()
            .map(WebhookSecret::from_opened)
    }

    fn signature_header(&self, secret: &WebhookSecret, timestamp: i64, body: &str) -> String {
        format!(
            "t={timestamp},v1={}",
            signature_hex(secret, timestamp, body)
        )
    }
}

/// `hex(HMAC-SHA-256(secret, "<timestamp>.<body>"))`: what a receiver recomputes
/// (docs/api.md shows the receiver's side).
pub fn signature_hex(secret: &WebhookSecret, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_under_the_same_master_key_and_unaltered() {
        let keys = WebhookKeys::derive(&MasterKey([3; 32]));
        let secret = WebhookSecret::generate();
        let sealed = keys.seal(&secret);
        assert_eq!(keys.open(&sealed), Some(secret.clone()));
        assert!(
            !sealed
                .0
                .windows(12)
                .any(|window| window == &secret.expose_secret().as_bytes()[6..18]),
            "the clear text is not in the sealed bytes"
        );
        assert_ne!(keys.seal(&secret), sealed, "a fresh nonce each time");
        let other = WebhookKeys::derive(&MasterKey([4; 32]));
        assert_eq!(other.open(&sealed), None);
        let mut altered = sealed.clone();
        let last = altered.0.len() - 1;
        altered.0[last] ^= 1;
        assert_eq!(keys.open(&altered), None);
        assert_eq!(keys.open(&SealedSecret(vec![])), None);
        assert_eq!(keys.open(&SealedSecret(vec![FORMAT_V1, 1, 2])), None);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let keys = WebhookKeys::derive(&MasterKey([3; 32]));
        let secret = WebhookSecret::from_opened("whsec_key".to_owned());
        // HMAC-SHA-256("whsec_key", "1700000000.{}"), computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_key`.
        assert_eq!(
            keys.signature_header(&secret, 1_700_000_000, "{}"),
            format!("t=1700000000,v1={}", EXPECTED)
        );
        assert_ne!(
            signature_hex(&secret, 1_700_000_001, "{}"),
            EXPECTED,
            "the timestamp is signed"
        );
        assert_ne!(signature_hex(&secret, 1_700_000_000, "{ }"), EXPECTED);
    }

    const EXPECTED: &str = "bfdd020b0e5c78488e2eb7c57161338519524f24714a6ba86c4224c4b6981a9d";
}
