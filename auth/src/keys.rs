//! Ed25519 key pairs as PEM files.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not an Ed25519 key in PKCS#8 PEM: {0}")]
    Format(String),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("token key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// A signing key and its public half, PEM-encoded.
#[derive(Clone)]
pub struct KeyPair {
    private_pem: String,
    public_pem: String,
    key_id: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("KeyPair").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KeyPair {
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Self::from_signing_key(SigningKey::from_bytes(&seed))
    }

    pub fn from_private_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_signing_key(SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Format(e.to_string()))?)
    }

    fn from_signing_key(key: SigningKey) -> Result<Self, KeyError> {
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Format(e.to_string()))?.to_string();
        let verifying = key.verifying_key();
        let public_pem = verifying.to_public_key_pem(LineEnding::LF).map_err(|e| KeyError::Format(e.to_string()))?;
        // A short, stable id of the public key for the JWT `kid` header.
        let key_id = verifying.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { private_pem, public_pem, key_id })
    }

    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// Loads the private key at `path`, creating it (mode 0600) if absent.
pub fn load_or_create_key_pair(path: &Path) -> Result<KeyPair, KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(pem) => KeyPair::from_private_pem(&pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pair = KeyPair::generate()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            write_private(path, pair.private_pem()).map_err(io)?;
            Ok(pair)
        }
        Err(e) => Err(io(e)),
    }
}

fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(pem.as_bytes())
}

/// Reads a public key PEM (for verifiers that must not hold the private key).
pub fn load_public_key(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })
}
