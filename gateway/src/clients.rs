//! gRPC clients of the domain services, and the metadata every call
//! carries (request id, deadline).

use std::sync::Arc;
use std::time::Duration;

use polyscale_auth::ServiceTokenIssuer;
use polyscale_proto::account::v1::account_service_client::AccountServiceClient;
use polyscale_proto::metadata::{AUTHORIZATION, CLIENT_ADDRESS, GATEWAY_TOKEN, REQUEST_ID};
use polyscale_proto::order::v1::order_service_client::OrderServiceClient;
use polyscale_proto::plugin::v1::plugin_service_client::PluginServiceClient;
use polyscale_proto::product::v1::product_service_client::ProductServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::GatewayConfig;
use crate::schema::RequestContext;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid service endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
}

/// Room in an upload's gRPC message for what is not the component.
const PLUGIN_MESSAGE_MARGIN: usize = 1 << 20;

/// One client per service; cheap to clone (channels multiplex).
#[derive(Clone)]
pub struct Clients {
    pub product: ProductServiceClient<Channel>,
    pub account: AccountServiceClient<Channel>,
    pub order: OrderServiceClient<Channel>,
    /// Merchant plugins, served by the order service's host (at
    /// `order_endpoints`).
    pub plugin: PluginServiceClient<Channel>,
    timeout: Duration,
    /// Proves to the services that calls come from this gateway.
    service_tokens: Option<Arc<ServiceTokenIssuer>>,
}

/// The deadline of a plugin upload (transfer to the service, validation,
/// compilation, storage).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

fn channel(endpoints: &[String], timeout: Duration) -> Result<Channel, ClientError> {
    polyscale_proto::channel::lazy(endpoints, Some(timeout + Duration::from_secs(1)))
        .map_err(|e| ClientError::InvalidEndpoint { endpoint: e.endpoint, reason: e.reason })
}

impl Clients {
    pub fn connect_lazy(config: &GatewayConfig) -> Result<Self, ClientError> {
        Ok(Self {
            product: ProductServiceClient::new(channel(&config.product_endpoints, config.service_timeout)?),
            account: AccountServiceClient::new(channel(&config.account_endpoints, config.service_timeout)?),
            order: OrderServiceClient::new(channel(&config.order_endpoints, config.service_timeout)?),
            // A connection of its own, so that a 30 MiB upload does not
            // queue the order calls behind it; an upload carries the
            // component whole: room for the largest one plus the rest of
            // the message.
            plugin: PluginServiceClient::new(channel(&config.order_endpoints, UPLOAD_TIMEOUT)?)
                .max_encoding_message_size(config.max_plugin_upload_bytes.saturating_add(PLUGIN_MESSAGE_MARGIN)),
            timeout: config.service_timeout,
            service_tokens: config.service_key.as_ref().map(|key| Arc::new(ServiceTokenIssuer::new(key))),
        })
    }

    /// A request carrying the request id, the caller's token, the client
    /// address with the gateway's service token, the trace context and the
    /// deadline.
    pub fn request<T>(&self, message: T, context: &RequestContext) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(context.request_id.as_str()) {
            metadata.insert(REQUEST_ID, v);
        }
        if let Some(issuer) = &self.service_tokens
            && let Ok(token) = MetadataValue::try_from(&*issuer.token())
            && let Ok(address) = MetadataValue::try_from(context.client_address.as_str())
        {
            metadata.insert(GATEWAY_TOKEN, token);
            metadata.insert(CLIENT_ADDRESS, address);
        }
        if let Some(token) = &context.token
            && let Ok(v) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            metadata.insert(AUTHORIZATION, v);
        }
        polyscale_proto::trace::inject(metadata);
        request.set_timeout(self.timeout);
        request
    }

    /// A plugin upload: as [`Clients::request`], with the deadline of an
    /// upload (the host validates and compiles the component; a Python
    /// one is 18 MB of Wasm).
    pub fn upload_request<T>(&self, message: T, context: &RequestContext) -> tonic::Request<T> {
        let mut request = self.request(message, context);
        request.set_timeout(UPLOAD_TIMEOUT.max(self.timeout));
        request
    }
}
