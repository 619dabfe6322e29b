//! The root key and its envelope: what makes the master key rotatable.
//!
//! Every hashing, signing and sealing key is derived (HKDF, one label per use)
//! from a 32-byte **root key**. The root key is kept in the database only wrapped
//! — sealed with XChaCha20-Poly1305 under a key-wrapping key derived from the
//! master key — so a dump alone reveals nothing. Rotating the master key re-wraps
//! the same root key under the new master key: every stored code hash, link hash,
//! API-key hash, signed code and sealed secret stays valid, and the old master key
//! then opens nothing current.
//!
//! A database that held data before envelopes existed had every key derived from
//! the master key itself; its root key is therefore the master key (wrapped under
//! itself at first start), so nothing issued before changes. A new database gets a
//! random root key.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use tessera_app::ports::{KeyEnvelopeStore, StoreError};
use thiserror::Error;

use crate::keys::{derive_bytes, MasterKey};

/// The key-wrapping key's label, and the AEAD's associated data.
const WRAP_LABEL: &[u8] = b"tessera/root-key-wrap/v1";
/// The first byte of every envelope, so a later format can be told apart.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const ROOT_LEN: usize = 32;
/// Format byte, nonce, the sealed root key and its 16-byte tag.
const ENVELOPE_LEN: usize = 1 + NONCE_LEN + ROOT_LEN + 16;

/// Why an envelope could not be opened. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    #[error(
        "the stored root key is not wrapped under this master key (nor under \
         TESSERA_MASTER_KEY_PREVIOUS): wrong key, or a rotation not run yet"
    )]
    WrongKey,
    #[error("the stored root key envelope is malformed")]
    Malformed,
}

/// Which master key opened the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedWith {
    Current,
    /// The previous key: run `tessera keys rotate` to re-wrap under the current.
    Previous,
}

fn cipher(master: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&derive_bytes(master, WRAP_LABEL).into())
}

/// A fresh random root key, for a database that holds nothing yet.
pub fn new_root() -> MasterKey {
    let mut bytes = [0u8; ROOT_LEN];
    rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    MasterKey(bytes)
}

/// `root` sealed under `master`: format byte, nonce, ciphertext with tag.
pub fn wrap(master: &MasterKey, root: &MasterKey) -> Vec<u8> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let payload = Payload {
        msg: &root.0,
        aad: WRAP_LABEL,
    };
    // Encryption only fails for messages beyond 256 GiB.
    let sealed = cipher(master)
        .encrypt(&nonce, payload)
        .unwrap_or_else(|_| unreachable!("32 bytes are far below the AEAD's limit"));
    let mut envelope = Vec::with_capacity(ENVELOPE_LEN);
    envelope.push(FORMAT_V1);
    envelope.extend_from_slice(&nonce);
    envelope.extend_from_slice(&sealed);
    envelope
}

/// The root key in `envelope`, if `master` sealed it.
pub fn unwrap(master: &MasterKey, envelope: &[u8]) -> Result<MasterKey, EnvelopeError> {
    if envelope.len() != ENVELOPE_LEN || envelope[0] != FORMAT_V1 {
        return Err(EnvelopeError::Malformed);
    }
    let (nonce, sealed) = envelope[1..].split_at(NONCE_LEN);
    let payload = Payload {
        msg: sealed,
        aad: WRAP_LABEL,
    };
    let root = cipher(master)
        .decrypt(XNonce::from_slice(nonce), payload)
        .map_err(|_| EnvelopeError::WrongKey)?;
    let root: [u8; ROOT_LEN] = root.try_into().map_err(|_| EnvelopeError::Malformed)?;
    Ok(MasterKey(root))
}

/// Opens `envelope` with the current master key, else with the previous one.
pub fn open(
    current: &MasterKey,
    previous: Option<&MasterKey>,
    envelope: &[u8],
) -> Result<(MasterKey, OpenedWith), EnvelopeError> {
    match unwrap(current, envelope) {
        Ok(root) => Ok((root, OpenedWith::Current)),
        Err(EnvelopeError::WrongKey) => match previous {
            Some(previous) => unwrap(previous, envelope).map(|root| (root, OpenedWith::Previous)),
            None => Err(EnvelopeError::WrongKey),
        },
        Err(other) => Err(other),
    }
}

/// Why the root key could not be had.
#[derive(Debug, Error)]
pub enum RootKeyError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("cannot read or write the root key envelope: {0}")]
    Store(#[from] StoreError),
    #[error("no root key envelope is stored yet: start `tessera serve` once first")]
    NoEnvelope,
    #[error("the root key envelope kept changing while it was rotated")]
    Contended,
}

/// How the root key was had at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootStatus {
    /// First start: an envelope was written. `inherited` when the database held
    /// data already, so the root key is the master key the data was made with.
    Created {
        inherited: bool,
    },
    Opened(OpenedWith),
}

/// The root key for this process: opens the stored envelope, or at the very first
/// start creates one (a random root key for an empty database; the master key
/// itself for one that predates envelopes). Several processes starting together
/// agree: the store keeps the first envelope written.
pub fn root_key(
    store: &dyn KeyEnvelopeStore,
    current: &MasterKey,
    previous: Option<&MasterKey>,
    now: DateTime<Utc>,
) -> Result<(MasterKey, RootStatus), RootKeyError> {
    for _ in 0..2 {
        if let Some(envelope) = store.load_envelope()? {
            let (root, with) = open(current, previous, &envelope)?;
            return Ok((root, RootStatus::Opened(with)));
        }
        let inherited = store.holds_data()?;
        let root = if inherited {
            current.clone()
        } else {
            new_root()
        };
        if store.create_envelope(&wrap(current, &root), now)? {
            return Ok((root, RootStatus::Created { inherited }));
        }
        // Another process wrote its envelope first: use that one.
    }
    Err(RootKeyError::Contended)
}

/// What `tessera keys rotate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The envelope was under the previous key; it is now under the current one.
    Rewrapped,
    /// The envelope was already under the current key: nothing to do.
    AlreadyCurrent,
}

/// Re-wraps the root key under `current`, opening it with `previous` (or finding
/// it already under `current`). Conditional on the envelope read, so two rotations
/// at once cannot lose each other's write.
pub fn rotate(
    store: &dyn KeyEnvelopeStore,
    current: &MasterKey,
    previous: Option<&MasterKey>,
    now: DateTime<Utc>,
) -> Result<Rotation, RootKeyError> {
    for _ in 0..3 {
        let envelope = store.load_envelope()?.ok_or(RootKeyError::NoEnvelope)?;
        let (root, with) = open(current, previous, &envelope)?;
        if with == OpenedWith::Current {
            return Ok(Rotation::AlreadyCurrent);
        }
        if store.replace_envelope(&envelope, &wrap(current, &root), now)? {
            return Ok(Rotation::Rewrapped);
        }
    }
    Err(RootKeyError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_with_its_master_key_only() {
        let (one, two) = (MasterKey([1; 32]), MasterKey([2; 32]));
        let root = new_root();
        let envelope = wrap(&one, &root);
        assert_eq!(envelope.len(), ENVELOPE_LEN);
        assert_eq!(unwrap(&one, &envelope).expect("opens").0, root.0);
        assert_eq!(
            unwrap(&two, &envelope).map(|_| ()),
            Err(EnvelopeError::WrongKey)
        );
        assert!(
            !envelope.windows(32).any(|w| w == root.0),
            "the root key is not in the envelope in clear"
        );
        assert_ne!(wrap(&one, &root), envelope, "a fresh nonce every time");
    }

    #[test]
    fn rotation_rewraps_the_same_root_and_the_previous_key_bridges_it() {
        let (old, new) = (MasterKey([3; 32]), MasterKey([4; 32]));
        let root = new_root();
        let before = wrap(&old, &root);
        let (opened, with) = open(&new, Some(&old), &before).expect("the previous key opens it");
        assert_eq!((opened.0, with), (root.0, OpenedWith::Previous));
        let after = wrap(&new, &opened);
        let (opened, with) = open(&new, None, &after).expect("the current key alone");
        assert_eq!((opened.0, with), (root.0, OpenedWith::Current));
        assert_eq!(
            open(&old, None, &after).map(|_| ()),
            Err(EnvelopeError::WrongKey)
        );
    }

    /// An in-memory envelope store, for the start and rotation logic.
    #[derive(Default)]
    struct Memory {
        envelope: std::sync::Mutex<Option<Vec<u8>>>,
        data: bool,
    }

    impl KeyEnvelopeStore for Memory {
        fn load_envelope(&self) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.envelope.lock().unwrap().clone())
        }
        fn create_envelope(&self, e: &[u8], _: DateTime<Utc>) -> Result<bool, StoreError> {
            let mut stored = self.envelope.lock().unwrap();
            Ok(stored.is_none() && stored.replace(e.to_vec()).is_none())
        }
        fn replace_envelope(
            &self,
            expected: &[u8],
            e: &[u8],
            _: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut stored = self.envelope.lock().unwrap();
            let matches = stored.as_deref() == Some(expected);
            if matches {
                *stored = Some(e.to_vec());
            }
            Ok(matches)
        }
        fn holds_data(&self) -> Result<bool, StoreError> {
            Ok(self.data)
        }
    }

    #[test]
    fn the_first_start_creates_the_root_and_later_starts_open_it() {
        let (old, new) = (MasterKey([6; 32]), MasterKey([7; 32]));
        let empty = Memory::default();
        let (root, status) = root_key(&empty, &old, None, Utc::now()).expect("created");
        assert_eq!(status, RootStatus::Created { inherited: false });
        assert_ne!(root.0, old.0, "a new database gets a random root key");
        let (again, status) = root_key(&empty, &old, None, Utc::now()).expect("opened");
        assert_eq!(
            (again.0, status),
            (root.0, RootStatus::Opened(OpenedWith::Current))
        );
        // Rotation: the new key alone fails until the envelope is re-wrapped.
        assert!(matches!(
            root_key(&empty, &new, None, Utc::now()),
            Err(RootKeyError::Envelope(EnvelopeError::WrongKey))
        ));
        assert_eq!(
            rotate(&empty, &new, Some(&old), Utc::now()).unwrap(),
            Rotation::Rewrapped
        );
        assert_eq!(
            rotate(&empty, &new, Some(&old), Utc::now()).unwrap(),
            Rotation::AlreadyCurrent
        );
        let (after, status) = root_key(&empty, &new, None, Utc::now()).expect("opened");
        assert_eq!(
            (after.0, status),
            (root.0, RootStatus::Opened(OpenedWith::Current))
        );
        assert!(
            root_key(&empty, &old, None, Utc::now()).is_err(),
            "the old key is retired"
        );
    }

    #[test]
    fn a_database_from_before_envelopes_keeps_its_keys() {
        let master = MasterKey([8; 32]);
        let legacy = Memory {
            data: true,
            ..Memory::default()
        };
        let (root, status) = root_key(&legacy, &master, None, Utc::now()).expect("created");
        assert_eq!(status, RootStatus::Created { inherited: true });
        assert_eq!(root.0, master.0, "every key derives as it did before");
    }

    #[test]
    fn a_tampered_or_truncated_envelope_is_refused() {
        let master = MasterKey([5; 32]);
        let mut envelope = wrap(&master, &new_root());
        assert_eq!(
            unwrap(&master, &envelope[..40]).map(|_| ()),
            Err(EnvelopeError::Malformed)
        );
        envelope[30] ^= 1;
        assert_eq!(
            unwrap(&master, &envelope).map(|_| ()),
            Err(EnvelopeError::WrongKey)
        );
        envelope[0] = 9;
        assert_eq!(
            unwrap(&master, &envelope).map(|_| ()),
            Err(EnvelopeError::Malformed)
        );
    }
}
