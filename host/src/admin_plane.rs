//! The admin plane: `ComponentAdmin`, `Operator` and `SearchAdmin` on a
//! listener of their own, never the data plane's.
//!
//! - **Unix socket** (embedded default, `DATA_DIR/admin.sock`): created
//!   mode 0600 inside the 0700 data directory, so only the operator's own
//!   user can connect; the file system is the authentication.
//! - **TCP** (distributed): every call must carry the operator token
//!   (`authorization: Bearer TOKEN`), read from a file or secret; the
//!   listener refuses to start without one. Put it behind a network policy
//!   too: the token is a shared secret, not a client certificate.
//!
//! An anonymous client of the data-plane port finds none of these
//! services (UNIMPLEMENTED).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use polyscale_proto::metadata::AUTHORIZATION;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, UnixListener};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Shortest operator token accepted (bytes): guessing must be hopeless.
pub const MIN_OPERATOR_TOKEN_BYTES: usize = 32;

/// Where the admin plane listens.
pub enum AdminListener {
    /// Guarded by its file mode (0600).
    Unix { listener: UnixListener, path: PathBuf },
    /// Guarded by the operator token.
    Tcp { listener: TcpListener, token: OperatorToken },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminListenError {
    #[error("admin socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("admin listener {addr}: {source}")]
    Tcp { addr: String, source: std::io::Error },
    #[error("operator token: {0}")]
    Token(String),
}

impl AdminListener {
    /// Binds a Unix socket at `path`, replacing a stale one, readable and
    /// writable by this user only.
    pub fn unix(path: &Path) -> Result<Self, AdminListenError> {
        use std::os::unix::fs::PermissionsExt;
        let error = |source| AdminListenError::Socket { path: path.to_path_buf(), source };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let listener = UnixListener::bind(path).map_err(error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
        Ok(Self::Unix { listener, path: path.to_path_buf() })
    }

    /// Binds a TCP listener whose calls must carry `token`.
    pub async fn tcp(addr: &str, token: OperatorToken) -> Result<Self, AdminListenError> {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| AdminListenError::Tcp { addr: addr.to_string(), source })?;
        Ok(Self::Tcp { listener, token })
    }

    /// Where clients reach it: `unix:PATH` or `http://HOST:PORT`.
    pub fn address(&self) -> String {
        match self {
            Self::Unix { path, .. } => format!("unix:{}", path.display()),
            Self::Tcp { listener, .. } => match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://(unbound)".into(),
            },
        }
    }
}

/// The shared secret TCP admin calls present.
#[derive(Clone)]
pub struct OperatorToken(Arc<str>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(redacted)")
    }
}

impl OperatorToken {
    pub fn new(token: &str) -> Result<Self, AdminListenError> {
        let token = token.trim();
        if token.len() < MIN_OPERATOR_TOKEN_BYTES {
            return Err(AdminListenError::Token(format!(
                "must be at least {MIN_OPERATOR_TOKEN_BYTES} characters (it is {})",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminListenError::Token("must be printable ASCII without spaces".into()));
        }
        Ok(Self(token.into()))
    }

    /// Reads the token from a file (a mounted secret, say).
    pub fn from_file(path: &Path) -> Result<Self, AdminListenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AdminListenError::Token(format!("reading {}: {e}", path.display())))?;
        Self::new(&text)
    }

    /// A fresh random token (hex of 32 random bytes).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source");
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Checks the operator token on each admin call (TCP only; `None` on the
/// Unix socket, whose mode is the check).
#[derive(Clone)]
pub struct AdminAuth(pub Option<OperatorToken>);

impl Interceptor for AdminAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else { return Ok(request) };
        let presented = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if token.matches(presented) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("the admin plane needs the operator token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(OperatorToken::new("short").is_err());
        assert!(OperatorToken::new(&"a b".repeat(20)).is_err());
        assert!(OperatorToken::new(&"x".repeat(32)).is_ok());
        assert_eq!(OperatorToken::generate().expose().len(), 64);
    }

    #[test]
    fn only_the_exact_token_passes() {
        let token = OperatorToken::new(&"k".repeat(40)).unwrap();
        let mut auth = AdminAuth(Some(token));
        let with = |value: Option<&str>| {
            let mut request = Request::new(());
            if let Some(v) = value {
                request.metadata_mut().insert(AUTHORIZATION, v.parse().unwrap());
            }
            request
        };
        assert!(auth.call(with(Some(&format!("Bearer {}", "k".repeat(40))))).is_ok());
        for wrong in [None, Some("Bearer "), Some(&*format!("Bearer {}", "k".repeat(39))), Some(&*"k".repeat(40))] {
            let refused = auth.call(with(wrong)).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        }
        assert!(AdminAuth(None).call(with(None)).is_ok());
    }
}
