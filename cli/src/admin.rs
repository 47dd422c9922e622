//! Reaching a host's admin plane (see `polyscale_host::admin_plane`): a
//! Unix socket (`unix:PATH`, the embedded default `./data/admin.sock`) or
//! TCP (`http://HOST:PORT`) with the operator token.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient;
use polyscale_proto::admin::v1::operator_client::OperatorClient;
use polyscale_proto::admin::v1::search_admin_client::SearchAdminClient;
use polyscale_proto::metadata::AUTHORIZATION;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where the admin plane is, as an operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddress {
    Unix(PathBuf),
    /// `http://HOST:PORT`.
    Tcp(String),
}

impl AdminAddress {
    /// `unix:PATH`, `http://HOST:PORT` or `HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("`{text}`: expected unix:PATH"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let url = if text.contains("://") { text.to_string() } else { format!("http://{text}") };
        url.parse::<Uri>().map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Self::Tcp(url))
    }

    /// The default socket of a data directory.
    pub fn socket_in(data_dir: &Path) -> Self {
        Self::Unix(data_dir.join(SOCKET_NAME))
    }
}

impl std::fmt::Display for AdminAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(url) => f.write_str(url),
        }
    }
}

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Adds the operator token (if any) to each admin call.
#[derive(Clone)]
pub struct OperatorAuth(Option<String>);

impl Interceptor for OperatorAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::invalid_argument("the operator token is not a valid header value"))?;
            request.metadata_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }
}

pub type AdminChannel = InterceptedService<Channel, OperatorAuth>;

/// A connection to the admin plane, from which each admin client is made.
#[derive(Clone)]
pub struct Admin {
    channel: AdminChannel,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminConnectError {
    #[error("cannot reach the admin plane at {address}: {source}")]
    Connect { address: String, source: tonic::transport::Error },
    #[error("operator token file {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
}

impl Admin {
    /// Connects to `address`; TCP calls carry the token read from
    /// `token_file`.
    pub async fn connect(address: &AdminAddress, token_file: Option<&Path>) -> Result<Self, AdminConnectError> {
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| AdminConnectError::Token { path: path.to_path_buf(), source })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Self::connect_with_token(address, token).await
    }

    pub async fn connect_with_token(address: &AdminAddress, token: Option<String>) -> Result<Self, AdminConnectError> {
        let failed = |source| AdminConnectError::Connect { address: address.to_string(), source };
        let channel = match address {
            AdminAddress::Unix(path) => {
                let path = path.clone();
                // The URI is required by the API and unused by the connector.
                Endpoint::from_static("http://admin.sock")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
                    }))
                    .await
                    .map_err(failed)?
            }
            AdminAddress::Tcp(url) => {
                Endpoint::from_shared(url.clone()).map_err(failed)?.tcp_nodelay(true).connect().await.map_err(failed)?
            }
        };
        Ok(Self { channel: InterceptedService::new(channel, OperatorAuth(token)) })
    }

    pub fn components(&self) -> ComponentAdminClient<AdminChannel> {
        ComponentAdminClient::new(self.channel.clone()).max_encoding_message_size(usize::MAX)
    }

    pub fn operator(&self) -> OperatorClient<AdminChannel> {
        OperatorClient::new(self.channel.clone())
    }

    pub fn search(&self) -> SearchAdminClient<AdminChannel> {
        SearchAdminClient::new(self.channel.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(AdminAddress::parse("unix:/tmp/a.sock"), Ok(AdminAddress::Unix("/tmp/a.sock".into())));
        assert_eq!(AdminAddress::parse("127.0.0.1:9"), Ok(AdminAddress::Tcp("http://127.0.0.1:9".into())));
        assert_eq!(AdminAddress::parse("http://h:9"), Ok(AdminAddress::Tcp("http://h:9".into())));
        assert!(AdminAddress::parse("unix:").is_err());
        assert!(AdminAddress::parse("http://bad host").is_err());
    }
}
