//! The order component's views of its sibling services — `catalog` and
//! `inventory` (the product service) and `customers` (the account
//! service) — answered with gRPC calls, so the order component never holds
//! a client, an address or a key.
//!
//! Every call carries what the component's own call carried: the request
//! id, the caller's access token (the sibling verifies it again and applies
//! its own rules for that caller), the time left before the call's deadline
//! (`grpc-timeout`), and the order service's service token, which is what
//! opens the product service's `InventoryService` (no other caller may
//! reserve stock).
//!
//! In embedded mode the siblings are in the same process and the calls go
//! over loopback, the distributed code path. A nested call waits only on
//! the sibling's own slot quota, never on the calling slot's, so calls that
//! nest cannot deadlock the instance pool (see docs/orders.md).

mod catalog;
mod customers;
mod inventory;

use std::sync::Arc;
use std::time::{Duration, Instant};

use polyscale_auth::{ORDER_SERVICE_SUBJECT, ServiceKey, ServiceTokenIssuer};
use polyscale_proto::account::v1::account_service_client::AccountServiceClient;
use polyscale_proto::metadata::{AUTHORIZATION, REQUEST_ID, SERVICE_TOKEN};
use polyscale_proto::product::v1::inventory_service_client::InventoryServiceClient;
use polyscale_proto::product::v1::product_service_client::ProductServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use wasmtime::component::{HasData, Linker};

use crate::bindings::order::polyscale::commerce::{
    catalog as wit_catalog, customers as wit_customers, inventory as wit_inventory,
};
use crate::bindings::types::{DomainError, FieldError};
use crate::call::CallInfo;

/// Where the siblings are.
#[derive(Debug, Clone)]
pub struct SiblingEndpoints {
    /// The product service's replicas (`ProductService`,
    /// `InventoryService`).
    pub product: Vec<String>,
    /// The account service's.
    pub account: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid sibling endpoint `{endpoint}`: {reason}")]
pub struct EndpointError {
    endpoint: String,
    reason: String,
}

/// The clients of the siblings, shared by every call of the slot.
pub struct Siblings {
    product: ProductServiceClient<Channel>,
    inventory: InventoryServiceClient<Channel>,
    account: AccountServiceClient<Channel>,
    tokens: ServiceTokenIssuer,
    /// Used when a call has no deadline of its own.
    default_timeout: Duration,
    /// The longest a reservation may hold stock before it expires: the
    /// host caps the expiry a component asks for, so that no component can
    /// keep stock from sale longer than the operator allows.
    max_hold: Duration,
}

fn channel(endpoints: &[String]) -> Result<Channel, EndpointError> {
    polyscale_proto::channel::lazy(endpoints, None)
        .map_err(|e| EndpointError { endpoint: e.endpoint, reason: e.reason })
}

impl Siblings {
    pub fn connect_lazy(
        endpoints: &SiblingEndpoints,
        key: &ServiceKey,
        default_timeout: Duration,
        max_hold: Duration,
    ) -> Result<Self, EndpointError> {
        let product = channel(&endpoints.product)?;
        Ok(Self {
            inventory: InventoryServiceClient::new(product.clone()),
            product: ProductServiceClient::new(product),
            account: AccountServiceClient::new(channel(&endpoints.account)?),
            tokens: ServiceTokenIssuer::for_subject(key, ORDER_SERVICE_SUBJECT),
            default_timeout,
            max_hold,
        })
    }

    /// A request carrying the call's request id, caller token, remaining
    /// time, trace context and the order service's token. None when the call's deadline
    /// has already passed.
    fn request<T>(&self, message: T, call: &CallInfo) -> Result<tonic::Request<T>, DomainError> {
        let mut request = tonic::Request::new(message);
        let timeout = match call.deadline {
            Some(deadline) => deadline.checked_duration_since(Instant::now()).filter(|t| !t.is_zero()),
            None => Some(self.default_timeout),
        }
        .ok_or_else(|| DomainError::Unavailable("the call's deadline has passed".into()))?;
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(call.request_id.as_str()) {
            metadata.insert(REQUEST_ID, v);
        }
        if let Ok(v) = MetadataValue::try_from(&*self.tokens.token()) {
            metadata.insert(SERVICE_TOKEN, v);
        }
        if let Some(token) = &call.bearer
            && let Ok(v) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            metadata.insert(AUTHORIZATION, v);
        }
        // The current span is the component call's (or its capability
        // call's): the sibling's spans join the caller's trace.
        polyscale_proto::trace::inject(metadata);
        Ok(request)
    }
}

/// A sibling's failure as the component sees it: the sibling's domain
/// errors keep their meaning (field violations keep their codes); transport
/// failures and timeouts are `unavailable`, so the component can tell "try
/// again" from "no".
pub(crate) fn domain_error(service: &str, status: &tonic::Status) -> DomainError {
    use tonic::Code;
    let message = status.message().to_string();
    match status.code() {
        Code::InvalidArgument => {
            let fields: Vec<FieldError> = status
                .get_details_bad_request()
                .map(|b| {
                    b.field_violations
                        .into_iter()
                        .map(|v| FieldError { field: v.field, code: v.reason, message: v.description })
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() {
                DomainError::Invalid(vec![FieldError { field: String::new(), code: "INVALID".into(), message }])
            } else {
                DomainError::Invalid(fields)
            }
        }
        Code::NotFound => DomainError::NotFound(message),
        Code::Unauthenticated => DomainError::Unauthenticated(message),
        Code::PermissionDenied => DomainError::Forbidden(message),
        Code::Aborted | Code::AlreadyExists | Code::FailedPrecondition => DomainError::Conflict(message),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            tracing::warn!(service, code = ?status.code(), %message, "sibling service unavailable");
            DomainError::Unavailable(format!("the {service} service is unavailable"))
        }
        _ => {
            tracing::error!(service, code = ?status.code(), %message, "sibling service failed");
            DomainError::Internal(format!("the {service} service failed"))
        }
    }
}

/// What the sibling host functions see: the clients and the call.
pub struct SiblingsCtxView<'a> {
    pub siblings: &'a Arc<Siblings>,
    pub call: &'a CallInfo,
}

/// Store data that carries the sibling capabilities.
pub trait SiblingsView: Send {
    fn siblings(&mut self) -> SiblingsCtxView<'_>;
}

struct HasSiblings;

impl HasData for HasSiblings {
    type Data<'a> = SiblingsCtxView<'a>;
}

/// Links `catalog`, `inventory` and `customers` for any store data with a
/// [`SiblingsView`].
pub fn add_to_linker<T: SiblingsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit_catalog::add_to_linker::<T, HasSiblings>(linker, |t| t.siblings())?;
    wit_inventory::add_to_linker::<T, HasSiblings>(linker, |t| t.siblings())?;
    wit_customers::add_to_linker::<T, HasSiblings>(linker, |t| t.siblings())
}
