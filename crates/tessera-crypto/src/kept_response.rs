//! The AEAD that seals the responses kept for `Idempotency-Key` replays: they can
//! hold codes and access tokens, so the database stores them only encrypted.
//! ChaCha20-Poly1305 under a key derived from the master key with its own HKDF
//! label; a fresh random 96-bit nonce per sealing, stored in front of the
//! ciphertext; the row's scope and key hash are the associated data, so a sealed
//! body moved to another row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use tessera_app::ports::ResponseSealer;

use crate::keys::{derive_bytes, MasterKey};

const KEPT_RESPONSE_LABEL: &[u8] = b"tessera/idempotency/v1";
const NONCE_BYTES: usize = 12;

/// Seals and opens kept responses.
pub struct KeptResponseBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for KeptResponseBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptResponseBox(..)")
    }
}

impl KeptResponseBox {
    pub fn derive(master: &MasterKey) -> Self {
        let key = derive_bytes(master, KEPT_RESPONSE_LABEL);
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }
}

impl ResponseSealer for KeptResponseBox {
    fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            // Encryption fails only for messages over 256 GiB.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(seed: u8) -> KeptResponseBox {
        KeptResponseBox::derive(&MasterKey([seed; 32]))
    }

    #[test]
    fn a_sealed_body_opens_only_with_its_key_and_context() {
        let sealer = boxed(7);
        let sealed = sealer.seal(b"ten_x|key", b"{\"code\":\"SECRET1\"}");
        assert!(!sealed.windows(7).any(|w| w == b"SECRET1"));
        assert_eq!(
            sealer.open(b"ten_x|key", &sealed).as_deref(),
            Some(&b"{\"code\":\"SECRET1\"}"[..])
        );
        assert_eq!(sealer.open(b"ten_y|key", &sealed), None);
        assert_eq!(boxed(8).open(b"ten_x|key", &sealed), None);
        assert_eq!(sealer.open(b"ten_x|key", &sealed[..5]), None);
        // A fresh nonce each time: the same body never seals alike.
        assert_ne!(sealed, sealer.seal(b"ten_x|key", b"{\"code\":\"SECRET1\"}"));
    }
}
