//! gRPC clients of the domain services, and the metadata every call
//! carries (request id, deadline).

use std::time::Duration;

use polyscale_proto::metadata::REQUEST_ID;
use polyscale_proto::product::v1::product_service_client::ProductServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::GatewayConfig;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid service endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
}

/// One client per service; cheap to clone (channels multiplex).
#[derive(Clone)]
pub struct Clients {
    pub product: ProductServiceClient<Channel>,
    timeout: Duration,
}

fn channel(endpoint: &str, timeout: Duration) -> Result<Channel, ClientError> {
    let invalid = |reason: String| ClientError::InvalidEndpoint { endpoint: endpoint.to_string(), reason };
    Ok(Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout + Duration::from_secs(1))
        .tcp_nodelay(true)
        // Connects on first use and reconnects after a service restart.
        .connect_lazy())
}

impl Clients {
    pub fn connect_lazy(config: &GatewayConfig) -> Result<Self, ClientError> {
        Ok(Self {
            product: ProductServiceClient::new(channel(&config.product_endpoint, config.service_timeout)?),
            timeout: config.service_timeout,
        })
    }

    /// A request carrying the request id and deadline.
    pub fn request<T>(&self, message: T, request_id: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(v) = MetadataValue::try_from(request_id) {
            request.metadata_mut().insert(REQUEST_ID, v);
        }
        request.set_timeout(self.timeout);
        request
    }
}
