//! Tessera's key material and what is done with it: the master key, the HMAC keys
//! derived from it (HKDF-SHA-256) that hash every stored secret ([`Keyring`], the
//! app's `SecretHasher`), the Ed25519 keys that sign access tokens and codes
//! ([`Signer`], the app's `TokenSigner`), and the offline verification of those
//! tokens that a resource server does ([`jwt`]).
//!
//! Depends on the application and the domain only: no database, no web framework.
//! The server reads the settings and wires these into the use cases.

mod aead;
pub mod envelope;
mod kept_response;
mod keys;
mod signing;

pub mod jwt;

pub use aead::{signature_hex, WebhookKeys};
pub use kept_response::KeptResponseBox;
pub use keys::{derive_bytes, load_or_create_master_key, Keyring, MasterKey, MasterKeyError};
pub use signing::Signer;
