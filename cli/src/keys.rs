//! `polyscale keys generate`: the secrets the processes of a distributed
//! deployment share, as files to mount (docs/operations.md).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The files [`generate`] writes, by configuration key.
pub const FILES: [(&str, &str); 4] = [
    ("keys.token_signing_key_file", "token-signing-key.pem"),
    ("keys.token_public_key_file", "token-public-key.pem"),
    ("keys.service_key_file", "service-key"),
    ("admin.token_file", "operator-token"),
];

/// Writes a fresh token signing key (Ed25519), its public key, a service
/// key and an operator token into `dir`. Refuses before writing anything
/// if one of them exists: replacing a signing key signs everyone out.
pub fn generate(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths: Vec<PathBuf> = FILES.iter().map(|(_, name)| dir.join(name)).collect();
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        anyhow::bail!("{} exists; not overwriting any key (remove the files to start over)", existing.display());
    }
    let keys = polyscale_auth::KeyPair::generate()?;
    let contents = [
        (keys.private_pem().to_string(), 0o600),
        (keys.public_pem().to_string(), 0o644),
        (format!("{}\n", polyscale_auth::ServiceKey::generate().to_hex()), 0o600),
        (format!("{}\n", polyscale_host::admin_plane::OperatorToken::generate().expose()), 0o600),
    ];
    for (path, (content, mode)) in paths.iter().zip(contents) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(content.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(paths)
}
