//! `OrderService` over gRPC, served by the active order component, and the
//! order service as a host module (its slot, the sibling clients, upkeep).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pb::order_service_server::{OrderService, OrderServiceServer};
use polyscale_proto::order::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::module::{Planes, ServiceModule};
use super::{Authenticator, call_domain, respond};
use crate::bindings::order::exports::polyscale::commerce::order_payments as wit_pay;
use crate::bindings::order::exports::polyscale::commerce::orders as wit;
use crate::bindings::types::DomainError;
use crate::call::CallInfo;
use crate::capabilities::payments::{PaymentProviders, WebhookError, webhook};
use crate::capabilities::siblings::Siblings;
use crate::contracts::order as contract;
use crate::plugins::PluginHost;
use crate::registry::{Served, ServiceSlot};
use crate::runtime::{BoxFuture, WorldStore};
use crate::server::{HostContext, OrderServiceConfig, StartError};
use crate::services::plugin::{PluginApi, PluginServiceServer};
use crate::worlds::order::OrderShared;
pub use crate::worlds::order::OrderWorld;

/// The order service's component slot.
pub type OrderSlot = ServiceSlot<OrderWorld>;

/// The code with which the component says another call with the same
/// idempotency key is in flight.
const KEY_IN_USE: &str = "IDEMPOTENCY_KEY_IN_USE";
/// How long a duplicate placement waits between looks at the first one.
const KEY_IN_USE_BACKOFF: Duration = Duration::from_millis(25);

pub struct OrderApi {
    slot: Arc<OrderSlot>,
    auth: Authenticator,
    /// Verifies payment webhooks before the component sees them.
    payments: Arc<PaymentProviders>,
}

fn key_in_use(e: &DomainError) -> bool {
    matches!(e, DomainError::Invalid(fields) if fields.iter().any(|f| f.code == KEY_IN_USE))
}

impl OrderApi {
    pub fn new(slot: Arc<OrderSlot>, auth: Authenticator, payments: Arc<PaymentProviders>) -> Self {
        Self { slot, auth, payments }
    }

    /// Calls one `order-payments` export and maps both kinds of failure.
    async fn invoke_payments<Req, T, F>(&self, request: &Request<Req>, f: F) -> Result<Served<T>, Status>
    where
        F: for<'a> FnOnce(
            &'a wit_pay::Guest,
            &'a mut WorldStore<OrderWorld>,
        ) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
    {
        let (info, timeout) = self.auth.call_info(request).await?;
        call_domain(&self.slot, info, timeout, |exports, store| f(exports.polyscale_commerce_order_payments(), store))
            .await
    }

    /// Calls one `orders` export and maps both kinds of failure.
    async fn invoke<Req, T, F>(&self, request: &Request<Req>, f: F) -> Result<Served<T>, Status>
    where
        F: for<'a> FnOnce(
            &'a wit::Guest,
            &'a mut WorldStore<OrderWorld>,
        ) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
    {
        let (info, timeout) = self.auth.call_info(request).await?;
        call_domain(&self.slot, info, timeout, |exports, store| f(exports.polyscale_commerce_orders(), store)).await
    }

    /// Places the order; while another call with the same key is in flight,
    /// waits and asks again, so that duplicates get the first call's answer
    /// (or IDEMPOTENCY_KEY_IN_USE when the deadline comes first).
    async fn place(&self, request: &Request<pb::PlaceOrderRequest>) -> Result<Served<wit::Order>, Status> {
        let (info, timeout) = self.auth.call_info(request).await?;
        let input = contract::place_order(request.get_ref().clone());
        let limit = timeout.map_or(self.slot.call_timeout(), |t| t.min(self.slot.call_timeout()));
        let deadline = Instant::now() + limit;
        loop {
            let (input, info) = (input.clone(), info.clone());
            let left = deadline.saturating_duration_since(Instant::now());
            let request_id = info.request_id.clone();
            let served = self
                .slot
                .call(info, Some(left), move |e, s| {
                    Box::pin(async move { e.polyscale_commerce_orders().call_place_order(s, &input).await })
                })
                .await
                .map_err(|e| super::status::call_error(e, &request_id))?;
            match served.value {
                Ok(order) => return Ok(Served { value: order, version: served.version }),
                Err(e) if key_in_use(&e) && Instant::now() + KEY_IN_USE_BACKOFF * 2 < deadline => {
                    tokio::time::sleep(KEY_IN_USE_BACKOFF).await;
                }
                Err(e) => return Err(super::status::domain_error(e, &request_id)),
            }
        }
    }
}

fn order_response(served: Served<wit::Order>) -> Response<pb::Order> {
    respond(served.value.into(), &served.version)
}

fn payment_response(served: Served<wit_pay::PaymentAnswer>) -> Response<pb::PaymentAnswer> {
    respond(served.value.into(), &served.version)
}

fn cart_response(served: Served<wit::CartAnswer>) -> Response<pb::CartAnswer> {
    respond(served.value.into(), &served.version)
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn get_cart(&self, request: Request<pb::GetCartRequest>) -> Result<Response<pb::CartAnswer>, Status> {
        let which = contract::cart_ref(request.get_ref().guest_token.clone());
        let served = self.invoke(&request, |o, s| Box::pin(async move { o.call_get_cart(s, &which).await })).await?;
        Ok(cart_response(served))
    }

    async fn add_to_cart(&self, request: Request<pb::AddToCartRequest>) -> Result<Response<pb::CartAnswer>, Status> {
        let pb::AddToCartRequest { guest_token, product_id, quantity } = request.get_ref().clone();
        let which = contract::cart_ref(guest_token);
        let served = self
            .invoke(&request, |o, s| {
                Box::pin(async move { o.call_add_to_cart(s, &which, &product_id, quantity).await })
            })
            .await?;
        Ok(cart_response(served))
    }

    async fn update_cart_line(
        &self,
        request: Request<pb::UpdateCartLineRequest>,
    ) -> Result<Response<pb::CartAnswer>, Status> {
        let pb::UpdateCartLineRequest { guest_token, product_id, quantity } = request.get_ref().clone();
        let which = contract::cart_ref(guest_token);
        let served = self
            .invoke(&request, |o, s| {
                Box::pin(async move { o.call_update_cart_line(s, &which, &product_id, quantity).await })
            })
            .await?;
        Ok(cart_response(served))
    }

    async fn remove_cart_line(
        &self,
        request: Request<pb::RemoveCartLineRequest>,
    ) -> Result<Response<pb::CartAnswer>, Status> {
        let pb::RemoveCartLineRequest { guest_token, product_id } = request.get_ref().clone();
        let which = contract::cart_ref(guest_token);
        let served = self
            .invoke(&request, |o, s| Box::pin(async move { o.call_remove_cart_line(s, &which, &product_id).await }))
            .await?;
        Ok(cart_response(served))
    }

    async fn clear_cart(&self, request: Request<pb::ClearCartRequest>) -> Result<Response<pb::CartAnswer>, Status> {
        let which = contract::cart_ref(request.get_ref().guest_token.clone());
        let served = self.invoke(&request, |o, s| Box::pin(async move { o.call_clear_cart(s, &which).await })).await?;
        Ok(cart_response(served))
    }

    async fn place_order(&self, request: Request<pb::PlaceOrderRequest>) -> Result<Response<pb::Order>, Status> {
        Ok(order_response(self.place(&request).await?))
    }

    async fn get_order(&self, request: Request<pb::GetOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let id = request.get_ref().id.clone();
        let served = self.invoke(&request, |o, s| Box::pin(async move { o.call_get_order(s, &id).await })).await?;
        Ok(order_response(served))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let r = request.get_ref();
        let page = crate::contracts::product::page_request(r.first, r.after.clone());
        let filter = contract::order_filter(r.status, r.view);
        let served =
            self.invoke(&request, |o, s| Box::pin(async move { o.call_list_orders(s, &page, filter).await })).await?;
        Ok(respond(served.value.into(), &served.version))
    }

    async fn cancel_order(&self, request: Request<pb::CancelOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let id = request.get_ref().id.clone();
        let served = self.invoke(&request, |o, s| Box::pin(async move { o.call_cancel_order(s, &id).await })).await?;
        Ok(order_response(served))
    }

    async fn fulfill_order(&self, request: Request<pb::FulfillOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let id = request.get_ref().id.clone();
        let lines = contract::fulfillment(request.get_ref().lines.clone());
        let served =
            self.invoke(&request, |o, s| Box::pin(async move { o.call_fulfill_order(s, &id, &lines).await })).await?;
        Ok(order_response(served))
    }

    async fn mark_delivered(&self, request: Request<pb::MarkDeliveredRequest>) -> Result<Response<pb::Order>, Status> {
        let id = request.get_ref().id.clone();
        let served = self.invoke(&request, |o, s| Box::pin(async move { o.call_mark_delivered(s, &id).await })).await?;
        Ok(order_response(served))
    }

    async fn authorize_payment(
        &self,
        request: Request<pb::AuthorizePaymentRequest>,
    ) -> Result<Response<pb::PaymentAnswer>, Status> {
        let pb::AuthorizePaymentRequest { order_id, provider, source } = request.get_ref().clone();
        let served = self
            .invoke_payments(&request, |p, s| {
                Box::pin(async move { p.call_authorize_payment(s, &order_id, &provider, &source).await })
            })
            .await?;
        Ok(payment_response(served))
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::PaymentAnswer>, Status> {
        let id = request.get_ref().payment_id.clone();
        let amount = request.get_ref().amount.clone().map(contract::money_in);
        let served = self
            .invoke_payments(&request, |p, s| {
                Box::pin(async move { p.call_capture_payment(s, &id, amount.as_ref()).await })
            })
            .await?;
        Ok(payment_response(served))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::PaymentAnswer>, Status> {
        let id = request.get_ref().payment_id.clone();
        let amount = request.get_ref().amount.clone().map(contract::money_in);
        let served = self
            .invoke_payments(&request, |p, s| {
                Box::pin(async move { p.call_refund_payment(s, &id, amount.as_ref()).await })
            })
            .await?;
        Ok(payment_response(served))
    }

    async fn void_payment(
        &self,
        request: Request<pb::VoidPaymentRequest>,
    ) -> Result<Response<pb::PaymentAnswer>, Status> {
        let id = request.get_ref().payment_id.clone();
        let served =
            self.invoke_payments(&request, |p, s| Box::pin(async move { p.call_void_payment(s, &id).await })).await?;
        Ok(payment_response(served))
    }

    async fn record_manual_payment(
        &self,
        request: Request<pb::RecordManualPaymentRequest>,
    ) -> Result<Response<pb::PaymentAnswer>, Status> {
        let pb::RecordManualPaymentRequest { order_id, amount, reference } = request.get_ref().clone();
        let amount = contract::money_in(amount.unwrap_or_default());
        let served = self
            .invoke_payments(&request, |p, s| {
                Box::pin(async move { p.call_record_manual_payment(s, &order_id, &amount, &reference).await })
            })
            .await?;
        Ok(payment_response(served))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let id = request.get_ref().order_id.clone();
        let served =
            self.invoke_payments(&request, |p, s| Box::pin(async move { p.call_list_payments(s, &id).await })).await?;
        let payments = served.value.into_iter().map(pb::Payment::from).collect();
        Ok(respond(pb::ListPaymentsResponse { payments }, &served.version))
    }

    /// Verifies the webhook here, in the host that holds the provider's
    /// secret, and only then hands the event to the component, as a call
    /// with no caller.
    async fn apply_payment_webhook(
        &self,
        request: Request<pb::ApplyPaymentWebhookRequest>,
    ) -> Result<Response<pb::ApplyPaymentWebhookResponse>, Status> {
        let (mut info, timeout) = self.auth.call_info(&request).await?;
        if info.service.as_deref() != Some(polyscale_auth::GATEWAY_SUBJECT) {
            return Err(Status::permission_denied("only the gateway delivers payment webhooks"));
        }
        // A webhook acts for no customer, whatever else the call carries.
        info.caller = None;
        info.bearer = None;
        let pb::ApplyPaymentWebhookRequest { provider, body, signature } = request.into_inner();
        if body.len() > webhook::MAX_BODY_BYTES {
            return Err(Status::invalid_argument(format!("the body exceeds {} bytes", webhook::MAX_BODY_BYTES)));
        }
        let event = self.payments.verify_webhook(&provider, &signature, &body).map_err(|e| {
            tracing::warn!(provider, error = %e, request_id = info.request_id, "payment webhook refused");
            match e {
                WebhookError::UnknownProvider | WebhookError::Unsupported => {
                    Status::not_found(format!("no webhooks for provider `{provider}`"))
                }
                WebhookError::BadSignature | WebhookError::Stale => Status::unauthenticated(e.to_string()),
                WebhookError::Malformed(_) => Status::invalid_argument(e.to_string()),
            }
        })?;
        let event_id = event.event_id.clone();
        let event = contract::payment_event(&provider, event);
        let served = call_domain(&self.slot, info, timeout, |e, s| {
            Box::pin(async move { e.polyscale_commerce_order_payments().call_apply_payment_event(s, &event).await })
        })
        .await?;
        if !served.value {
            tracing::info!(provider, event_id, "payment webhook replayed; applied before");
        }
        Ok(respond(pb::ApplyPaymentWebhookResponse { event_id, applied: served.value }, &served.version))
    }
}

/// How long idempotency keys are kept (the IETF draft's "at least 24
/// hours").
pub const KEEP_IDEMPOTENCY_KEYS: Duration = Duration::from_secs(24 * 3600);
/// Placements one upkeep call finishes at most.
const UPKEEP_BATCH: u32 = 100;

/// The order service as a host module.
pub struct OrderModule {
    slot: Arc<OrderSlot>,
    upkeep_interval: Duration,
    payments: Arc<PaymentProviders>,
    /// The merchants' plugins, run here for the carts this service prices.
    plugins: Arc<PluginHost>,
}

impl OrderModule {
    pub async fn build(config: &OrderServiceConfig, host: &mut HostContext) -> Result<Self, StartError> {
        let db = host.connect("order", &config.service.database_url).await?;
        let key =
            host.config().gateway_key.clone().ok_or_else(|| {
                StartError::Config("the order service needs the service key (`service_key_file`)".into())
            })?;
        let siblings = Siblings::connect_lazy(
            &config.siblings,
            &key,
            host.config().runtime.call_limits.timeout,
            config.reservation_hold,
        )
        .map_err(|e| StartError::Config(e.to_string()))?;
        let payments = Arc::new(PaymentProviders::from_config(&config.payments));
        let plugins = PluginHost::start(config.plugins.clone(), host.registry().store().clone()).await?;
        let shared = OrderShared {
            db,
            sql_limits: host.config().sql_limits,
            siblings: Arc::new(siblings),
            payments: payments.clone(),
            extensions: plugins.clone(),
        };
        let slot = host.start_slot::<OrderWorld>("order", shared, &config.service.component).await?;
        Ok(Self { slot, upkeep_interval: config.upkeep_interval, payments, plugins })
    }

    pub fn slot(&self) -> &Arc<OrderSlot> {
        &self.slot
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }
}

impl ServiceModule for OrderModule {
    fn name(&self) -> &'static str {
        "order"
    }

    fn register(&self, auth: &Authenticator, planes: &mut Planes) {
        planes.grpc.add_service(OrderServiceServer::new(OrderApi::new(
            self.slot.clone(),
            auth.clone(),
            self.payments.clone(),
        )));
        planes.health.push(<OrderServiceServer<OrderApi> as NamedService>::NAME);
        let max_message = self.plugins.config().max_upload_bytes + (1 << 20);
        planes.grpc.add_service(
            PluginServiceServer::new(PluginApi::new(self.plugins.clone(), auth.clone()))
                .max_decoding_message_size(max_message),
        );
        planes.health.push(<PluginServiceServer<PluginApi> as NamedService>::NAME);
        planes.add_slot(self.name(), self.slot.clone());
    }

    fn spawn_background(&self, stop: &CancellationToken) {
        let (slot, interval, stop) = (self.slot.clone(), self.upkeep_interval, stop.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let info = CallInfo::new(format!("order-upkeep-{}", uuid::Uuid::now_v7()), None);
                let keep = KEEP_IDEMPOTENCY_KEYS.as_millis() as i64;
                let result = slot
                    .call(info, None, move |e, s| {
                        Box::pin(
                            async move { e.polyscale_commerce_order_upkeep().call_run(s, keep, UPKEEP_BATCH).await },
                        )
                    })
                    .await;
                match result.map(|served| served.value) {
                    Ok(Ok(0)) => {}
                    Ok(Ok(finished)) => tracing::info!(finished, "order upkeep finished placements"),
                    Ok(Err(e)) => tracing::warn!(error = ?e, "order upkeep failed"),
                    Err(e) => tracing::warn!(error = %e, "order upkeep failed"),
                }
            }
        });
    }
}
