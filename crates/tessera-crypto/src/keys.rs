//! The master key and the keys derived from it (HKDF-SHA-256, one label per use),
//! and the keyed hashing of secrets that the database stores instead of them.
//!
//! Reading and creating the master key file lives here too, although it is I/O:
//! creating it means drawing the key from the OS's CSPRNG, encoding it and writing
//! it where only its owner can read it (mode 0600, never replacing a file), and
//! all of that is key handling the server should not reimplement. The server only
//! decides which file (`TESSERA_MASTER_KEY_FILE`) and reports what happened.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_app::model::SecretHash;
use tessera_app::ports::SecretHasher;
use tessera_domain::{Code, LinkToken, StandaloneToken, TenantId};
use thiserror::Error;

const CODE_HASH_LABEL: &[u8] = b"tessera/code-hash/v1";
const API_KEY_HASH_LABEL: &[u8] = b"tessera/api-key-hash/v1";
const STANDALONE_HASH_LABEL: &[u8] = b"tessera/standalone-hash/v1";
const LINK_HASH_LABEL: &[u8] = b"tessera/link-hash/v1";
const REDEEMER_HASH_LABEL: &[u8] = b"tessera/redeemer-hash/v1";

/// Why a text is not a master key. Never echoes the text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MasterKeyError {
    #[error("must be base64 of 32 bytes")]
    NotBase64,
    #[error("must be base64 of exactly 32 bytes")]
    WrongLength,
}

/// The master key: 32 bytes every hashing and signing key is derived from.
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// The key from its standard base64 encoding (surrounding whitespace ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, MasterKeyError> {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| MasterKeyError::NotBase64)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::WrongLength)?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

/// Reads the master key file, or creates it (mode 0600) with a fresh key.
/// Returns the key and whether it was just created.
pub fn load_or_create_master_key(path: &Path) -> std::io::Result<(MasterKey, bool)> {
    match fs::read_to_string(path) {
        Ok(encoded) => MasterKey::from_base64(&encoded)
            .map(|key| (key, false))
            .map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let key = MasterKey(bytes);
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            writeln!(file, "{}", key.to_base64())?;
            Ok((key, true))
        }
        Err(error) => Err(error),
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The hashing keys derived from the master key. Holds no master key itself.
#[derive(Clone)]
pub struct Keyring {
    code: HmacSha256,
    api_key: HmacSha256,
    standalone: HmacSha256,
    link: HmacSha256,
    redeemer: HmacSha256,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

/// 32 bytes of key material for one use, HKDF-SHA-256 over the master key with
/// that use's label.
pub fn derive_bytes(master: &MasterKey, label: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, &master.0).expand(label, &mut okm);
    okm
}

fn derive(master: &MasterKey, label: &[u8]) -> HmacSha256 {
    let okm = derive_bytes(master, label);
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(&okm)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

impl Keyring {
    pub fn derive(master: &MasterKey) -> Self {
        Self {
            code: derive(master, CODE_HASH_LABEL),
            api_key: derive(master, API_KEY_HASH_LABEL),
            standalone: derive(master, STANDALONE_HASH_LABEL),
            link: derive(master, LINK_HASH_LABEL),
            redeemer: derive(master, REDEEMER_HASH_LABEL),
        }
    }
}

/// HMAC over length-free parts separated by a byte no part can contain, so
/// ("ab", "c") and ("a", "bc") never hash alike.
fn mac(key: &HmacSha256, parts: &[&[u8]]) -> SecretHash {
    let mut mac = key.clone();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            mac.update(&[0]);
        }
        mac.update(part);
    }
    SecretHash(mac.finalize().into_bytes().into())
}

impl SecretHasher for Keyring {
    fn code_hash(&self, tenant: &TenantId, code: &Code) -> SecretHash {
        mac(
            &self.code,
            &[tenant.as_str().as_bytes(), code.expose_secret().as_bytes()],
        )
    }

    fn api_key_hash(&self, presented_key: &str) -> SecretHash {
        mac(&self.api_key, &[presented_key.as_bytes()])
    }

    fn standalone_hash(&self, tenant: &TenantId, token: &StandaloneToken) -> SecretHash {
        mac(
            &self.standalone,
            &[tenant.as_str().as_bytes(), token.expose_secret().as_bytes()],
        )
    }

    fn link_hash(&self, token: &LinkToken) -> SecretHash {
        mac(&self.link, &[token.expose_secret().as_bytes()])
    }

    fn redeemer_hash(&self, tenant: &TenantId, redeemer: &str) -> SecretHash {
        mac(
            &self.redeemer,
            &[tenant.as_str().as_bytes(), redeemer.as_bytes()],
        )
    }
}

#[cfg(test)]
mod tests {
    use tessera_domain::{Alphabet, TicketLength};

    use super::*;

    #[test]
    fn hashes_depend_on_the_master_key_the_tenant_and_the_purpose() {
        let one = Keyring::derive(&MasterKey([1; 32]));
        let two = Keyring::derive(&MasterKey([2; 32]));
        let code = Code::generate(Alphabet::Numeric, TicketLength::DEFAULT);
        let tenant = TenantId::generate();
        assert_eq!(one.code_hash(&tenant, &code), one.code_hash(&tenant, &code));
        assert_ne!(one.code_hash(&tenant, &code), two.code_hash(&tenant, &code));
        assert_ne!(
            one.code_hash(&tenant, &code),
            one.code_hash(&TenantId::generate(), &code)
        );
        assert_ne!(
            one.api_key_hash(code.expose_secret()),
            mac(&one.code, &[code.expose_secret().as_bytes()]),
            "each purpose has its own key"
        );
        assert_ne!(
            one.redeemer_hash(&tenant, "ann"),
            one.redeemer_hash(&TenantId::generate(), "ann")
        );
        assert_ne!(
            one.redeemer_hash(&tenant, "ann"),
            two.redeemer_hash(&tenant, "ann")
        );
    }

    #[test]
    fn a_master_key_is_32_bytes_of_base64_and_never_shown() {
        let key = MasterKey([7; 32]);
        let encoded = key.to_base64();
        let read = MasterKey::from_base64(&format!(" {encoded}\n")).expect("round trips");
        assert_eq!(read.0, key.0);
        assert_eq!(
            MasterKey::from_base64("not base64!").map(|_| ()),
            Err(MasterKeyError::NotBase64)
        );
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").map(|_| ()),
            Err(MasterKeyError::WrongLength)
        );
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn a_new_key_file_is_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("tessera-key-{}", TenantId::generate()));
        let path = dir.join("master.key");
        let (created, fresh) = load_or_create_master_key(&path).expect("created");
        assert!(fresh);
        let (read, fresh_again) = load_or_create_master_key(&path).expect("read");
        assert!(!fresh_again);
        assert_eq!(created.0, read.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).expect("cleanup");
    }
}
