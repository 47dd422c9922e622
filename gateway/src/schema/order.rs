//! Carts, order placement and the order lifecycle (`OrderService`).
//!
//! Cart calls work for guests: the first cart write without a token or a
//! guest token creates a guest cart and returns its `guestToken`, the
//! bearer secret of that cart. The lines' live `product` goes through the
//! request's product loader ([`super::loader`]), so a page of orders costs a
//! constant number of `GetProducts` calls.

use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use polyscale_proto::order::v1 as pb;

use super::account::{Address, AddressInput, address_pb};
use super::money::Money;
use super::product::{PageInfo, Product, timestamp};
use super::{clients, loader, request_context};
use crate::errors::{self, Code, Failure, UserError, api_error};
use crate::limits::{GraphqlLimits, MAX_PAGE_SIZE};

const DEFAULT_PAGE_SIZE: i32 = 20;

/// A count from the service as a GraphQL `Int` (the service keeps
/// quantities far below `i32::MAX`).
fn int(value: i64) -> i32 {
    value.clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

fn money(m: &Option<polyscale_proto::types::v1::Money>) -> Money {
    m.clone().unwrap_or_default().into()
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderStatus {
    /// Placed, not paid yet. Its stock is already taken; cancelling gives
    /// it back.
    PendingPayment,
    Paid,
    /// Some lines (or units) shipped.
    PartiallyFulfilled,
    /// Every line shipped.
    Fulfilled,
    Delivered,
    Cancelled,
    Refunded,
    PartiallyRefunded,
}

impl OrderStatus {
    fn from_pb(status: pb::OrderStatus) -> Option<Self> {
        Some(match status {
            pb::OrderStatus::Unspecified => return None,
            pb::OrderStatus::PendingPayment => OrderStatus::PendingPayment,
            pb::OrderStatus::Paid => OrderStatus::Paid,
            pb::OrderStatus::PartiallyFulfilled => OrderStatus::PartiallyFulfilled,
            pb::OrderStatus::Fulfilled => OrderStatus::Fulfilled,
            pb::OrderStatus::Delivered => OrderStatus::Delivered,
            pb::OrderStatus::Cancelled => OrderStatus::Cancelled,
            pb::OrderStatus::Refunded => OrderStatus::Refunded,
            pb::OrderStatus::PartiallyRefunded => OrderStatus::PartiallyRefunded,
        })
    }

    fn to_pb(self) -> pb::OrderStatus {
        match self {
            OrderStatus::PendingPayment => pb::OrderStatus::PendingPayment,
            OrderStatus::Paid => pb::OrderStatus::Paid,
            OrderStatus::PartiallyFulfilled => pb::OrderStatus::PartiallyFulfilled,
            OrderStatus::Fulfilled => pb::OrderStatus::Fulfilled,
            OrderStatus::Delivered => pb::OrderStatus::Delivered,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatus::Refunded => pb::OrderStatus::Refunded,
            OrderStatus::PartiallyRefunded => pb::OrderStatus::PartiallyRefunded,
        }
    }
}

/// How much of an order's total has been paid (captured minus refunded).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PaymentStatus {
    None,
    Partial,
    Full,
    Over,
}

impl PaymentStatus {
    fn from_pb(status: pb::PaymentStatus) -> Option<Self> {
        Some(match status {
            pb::PaymentStatus::Unspecified => return None,
            pb::PaymentStatus::None => PaymentStatus::None,
            pb::PaymentStatus::Partial => PaymentStatus::Partial,
            pb::PaymentStatus::Full => PaymentStatus::Full,
            pb::PaymentStatus::Over => PaymentStatus::Over,
        })
    }
}

/// Whose orders `orders` lists.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderView {
    /// The caller's own purchases.
    Purchases,
    /// Orders containing the calling merchant's products, with only their
    /// lines.
    Sales,
    /// Every order (admins).
    All,
}

impl OrderView {
    fn to_pb(self) -> pb::OrderView {
        match self {
            OrderView::Purchases => pb::OrderView::Purchases,
            OrderView::Sales => pb::OrderView::Sales,
            OrderView::All => pb::OrderView::All,
        }
    }
}

/// An enum value the service should never send.
fn unknown(what: &str, value: i32) -> async_graphql::Error {
    tracing::error!(what, value, "the order service sent an unknown enum value");
    api_error(Code::InternalServerError, "internal error")
}

/// A shopping cart: the signed-in customer's, or a guest's.
#[derive(Clone)]
pub struct Cart(pb::Cart);

#[Object]
impl Cart {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn lines(&self) -> Vec<CartLine> {
        self.0.lines.iter().cloned().map(CartLine).collect()
    }
    /// One total per currency, currencies in alphabetical order.
    async fn totals(&self) -> Vec<Money> {
        self.0.totals.iter().cloned().map(Money::from).collect()
    }
    /// Items, summed over the lines' quantities.
    async fn item_count(&self) -> i32 {
        int(self.0.item_count)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
    /// What the merchants' validation plugins say of the cart (and the
    /// pricing or validation plugins that failed); a `blocking` issue
    /// keeps it from being checked out as it is.
    async fn issues(&self) -> Vec<CartIssue> {
        self.0.issues.iter().cloned().map(CartIssue).collect()
    }
}

/// What a merchant's plugin says of a cart.
#[derive(Clone)]
pub struct CartIssue(pb::CartIssue);

#[Object]
impl CartIssue {
    /// The merchant whose plugin spoke.
    async fn merchant_id(&self) -> ID {
        ID(self.0.merchant_id.clone())
    }
    /// Stable, upper snake case: the plugin's own (`MAX_QUANTITY`), or
    /// `PRICING_FAILED` / `VALIDATION_FAILED` when the plugin itself
    /// failed.
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// For the buyer.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// A path into the cart's lines (`lines[2].quantity`), or "" for the
    /// whole cart.
    async fn field(&self) -> &str {
        &self.0.field
    }
    /// Whether the cart cannot be checked out as it is.
    async fn blocking(&self) -> bool {
        self.0.blocking
    }
}

/// A product in a cart, priced live on every read.
#[derive(Clone)]
pub struct CartLine(pb::CartLine);

#[Object]
impl CartLine {
    /// The product as it is now; `null` when it no longer exists.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        loader::product(ctx, &self.0.product_id).await
    }
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.clone())
    }
    async fn merchant_id(&self) -> ID {
        ID(self.0.merchant_id.clone())
    }
    /// The product's name (kept when the product is gone).
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn quantity(&self) -> i32 {
        int(self.0.quantity)
    }
    /// The current price.
    async fn unit_price(&self) -> Money {
        money(&self.0.unit_price)
    }
    async fn line_total(&self) -> Money {
        money(&self.0.line_total)
    }
    /// The unit price when the line was added, if it differs now.
    async fn previous_unit_price(&self) -> Option<Money> {
        self.0.previous_unit_price.clone().map(Money::from)
    }
    /// Whether the price changed since the line was added.
    async fn price_changed(&self) -> bool {
        self.0.previous_unit_price.is_some()
    }
    /// Units that can be reserved now; `quantity` may exceed it.
    async fn available(&self) -> i32 {
        int(self.0.available)
    }
    /// Whether the product still exists and can be ordered.
    async fn purchasable(&self) -> bool {
        self.0.purchasable
    }
    /// What the merchant's pricing plugins took off `lineTotal` (already
    /// deducted from it), in the line's currency.
    async fn discount(&self) -> Money {
        discount(&self.0.discount, &self.0.unit_price)
    }
    /// The pricing plugins' messages for the line ("10% off from 5 units").
    async fn notes(&self) -> &[String] {
        &self.0.notes
    }
}

/// A line's discount; none (a service that sent none) is zero in the
/// line's currency.
fn discount(
    discount: &Option<polyscale_proto::types::v1::Money>,
    unit_price: &Option<polyscale_proto::types::v1::Money>,
) -> Money {
    match discount {
        Some(d) => d.clone().into(),
        None => polyscale_proto::types::v1::Money {
            amount: 0,
            currency: unit_price.as_ref().map(|p| p.currency.clone()).unwrap_or_default(),
        }
        .into(),
    }
}

/// A placed order. A merchant sees only their own lines (and their total).
#[derive(Clone)]
pub struct Order(pb::Order);

impl Order {
    pub(crate) fn from_pb(order: pb::Order) -> Self {
        Order(order)
    }
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The account that placed it.
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.clone())
    }
    async fn status(&self) -> Result<OrderStatus> {
        self.0
            .status
            .try_into()
            .ok()
            .and_then(OrderStatus::from_pb)
            .ok_or_else(|| unknown("OrderStatus", self.0.status))
    }
    async fn payment_status(&self) -> Result<PaymentStatus> {
        self.0
            .payment_status
            .try_into()
            .ok()
            .and_then(PaymentStatus::from_pb)
            .ok_or_else(|| unknown("PaymentStatus", self.0.payment_status))
    }
    /// The lines the caller may see: all for the customer and admins, only
    /// their own for a merchant.
    async fn lines(&self) -> Vec<OrderLine> {
        self.0.lines.iter().cloned().map(OrderLine).collect()
    }
    /// Of the lines shown.
    async fn total(&self) -> Money {
        money(&self.0.total)
    }
    /// Captured minus refunded.
    async fn paid(&self) -> Money {
        money(&self.0.paid)
    }
    /// The order's payments, oldest first: for its customer and admins (a
    /// merchant sees none).
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<super::payment::Payment>> {
        super::payment::payments_of(ctx, &self.0.id).await
    }
    async fn shipping_address(&self) -> Option<Address> {
        self.0.shipping_address.clone().map(Address::from)
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        timestamp(self.0.placed_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
}

#[derive(Clone)]
pub struct OrderLine(pb::OrderLine);

#[Object]
impl OrderLine {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The product as it is now; `null` when it no longer exists.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        loader::product(ctx, &self.0.product_id).await
    }
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.clone())
    }
    async fn merchant_id(&self) -> ID {
        ID(self.0.merchant_id.clone())
    }
    /// The product's name when the order was placed.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn quantity(&self) -> i32 {
        int(self.0.quantity)
    }
    /// The price when the order was placed.
    async fn unit_price(&self) -> Money {
        money(&self.0.unit_price)
    }
    async fn line_total(&self) -> Money {
        money(&self.0.line_total)
    }
    /// Units shipped so far.
    async fn fulfilled_quantity(&self) -> i32 {
        int(self.0.fulfilled_quantity)
    }
    /// What the merchant's pricing plugins took off `lineTotal` when the
    /// order was placed.
    async fn discount(&self) -> Money {
        discount(&self.0.discount, &self.0.unit_price)
    }
    /// The pricing plugins' messages for the line when it was placed.
    async fn notes(&self) -> &[String] {
        &self.0.notes
    }
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    cursor: String,
    node: Order,
}

/// A page of orders, newest first (Relay connection).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderConnection {
    edges: Vec<OrderEdge>,
    page_info: PageInfo,
}

#[ComplexObject]
impl OrderConnection {
    /// The edges' nodes, for clients that need no cursors.
    async fn nodes(&self) -> Vec<Order> {
        self.edges.iter().map(|e| e.node.clone()).collect()
    }
}

impl OrderConnection {
    fn new(response: pb::ListOrdersResponse, has_previous_page: bool) -> Self {
        let edges: Vec<OrderEdge> = response
            .edges
            .into_iter()
            .map(|e| OrderEdge { cursor: e.cursor, node: Order(e.node.unwrap_or_default()) })
            .collect();
        OrderConnection {
            page_info: PageInfo {
                has_next_page: response.has_next_page,
                has_previous_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        }
    }
}

/// Orders matching every condition given.
#[derive(InputObject, Default)]
pub struct OrderFilter {
    status: Option<OrderStatus>,
    /// Default: `ALL` for admins, `SALES` for merchants, else `PURCHASES`.
    view: Option<OrderView>,
}

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// The signed-in caller's cart, or the guest cart of `guestToken`.
    /// Sending both merges the guest cart into the caller's (and deletes
    /// it).
    async fn cart(&self, ctx: &Context<'_>, guest_token: Option<String>) -> Result<Cart> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let answer = clients
            .order
            .clone()
            .get_cart(clients.request(pb::GetCartRequest { guest_token }, request))
            .await
            .map_err(|s| errors::top_level(&s))?
            .into_inner();
        Ok(Cart(answer.cart.unwrap_or_default()))
    }

    /// An order the caller may see (their own; a merchant's sale, with
    /// only their lines; any for admins). `null` when there is none.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        match clients.order.clone().get_order(clients.request(pb::GetOrderRequest { id: id.0 }, request)).await {
            Ok(r) => Ok(Some(Order(r.into_inner()))),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(errors::top_level(&status)),
        }
    }

    /// Orders, newest first, a page at a time (`first` at most 100).
    #[graphql(complexity = "first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        filter: Option<OrderFilter>,
    ) -> Result<OrderConnection> {
        let limits = ctx.data_unchecked::<GraphqlLimits>();
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if first < 1 || first > limits.max_page_size {
            return Err(api_error(
                Code::BadUserInput,
                format!("`first` must be between 1 and {}", limits.max_page_size),
            )
            .extend_with(|_, e| e.set("field", "first")));
        }
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let has_previous_page = after.is_some();
        let filter = filter.unwrap_or_default();
        let message = pb::ListOrdersRequest {
            first: first as u32,
            after,
            status: filter.status.map(|s| s.to_pb() as i32),
            view: filter.view.map_or(pb::OrderView::Unspecified, OrderView::to_pb) as i32,
        };
        let response = clients
            .order
            .clone()
            .list_orders(clients.request(message, request))
            .await
            .map_err(|s| errors::top_level(&s))?
            .into_inner();
        let look = ctx.look_ahead();
        if look.field("edges").field("node").field("lines").field("product").exists()
            || look.field("nodes").field("lines").field("product").exists()
        {
            // Every line's product of the page in one batch, before the
            // lines resolve one by one (they then hit the request's cache).
            let ids = response.edges.iter().filter_map(|e| e.node.as_ref()).flat_map(|o| &o.lines);
            loader::prefetch(ctx, ids.map(|l| l.product_id.clone())).await?;
        }
        Ok(OrderConnection::new(response, has_previous_page))
    }
}

#[derive(SimpleObject, Default)]
pub struct CartPayload {
    cart: Option<Cart>,
    /// Set when this call created a guest cart: send it as `guestToken` on
    /// every later cart call. It is the cart's only key; it cannot be shown
    /// again.
    guest_token: Option<String>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Default)]
pub struct OrderPayload {
    order: Option<Order>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// Chosen by the client, unique per order it means to place (a UUID):
    /// retrying with the same key and the same cart replays the first
    /// answer instead of placing a second order. 1 to 255 printable ASCII
    /// characters; kept 24 hours.
    idempotency_key: String,
    /// Default: the account's default address.
    shipping_address: Option<AddressInput>,
}

#[derive(InputObject)]
pub struct FulfillmentLineInput {
    line_id: ID,
    /// Units of the line shipped now.
    quantity: i32,
}

fn split(field: &str) -> Vec<String> {
    field.split('.').map(str::to_string).collect()
}

/// Input path of a service field for the cart mutations (whose arguments
/// are all top-level). A `NOT_FOUND` may be about the product or the guest
/// cart, so it names no field.
fn cart_path(field: &str) -> Vec<String> {
    if field == "id" { Vec::new() } else { split(field) }
}

/// Input path for `placeOrder`: under `input`. A `NOT_FOUND` names no field.
fn place_order_path(field: &str) -> Vec<String> {
    if field == "id" {
        return Vec::new();
    }
    let mut path = split(field);
    path.insert(0, "input".into());
    path
}

/// Input path for the mutations of one order (`id`, `lines`).
fn order_path(field: &str) -> Vec<String> {
    split(field)
}

/// Splits a failed mutation into payload user errors or a top-level error.
/// An empty path means the error names no field.
pub(crate) fn user_errors(status: tonic::Status, path: &dyn Fn(&str) -> Vec<String>) -> Result<Vec<UserError>> {
    match errors::from_status(&status, path) {
        Failure::User(errors) => {
            Ok(errors.into_iter().map(|e| UserError { field: e.field.filter(|f| !f.is_empty()), ..e }).collect())
        }
        Failure::Api(e) => Err(e),
    }
}

fn cart_payload(result: std::result::Result<tonic::Response<pb::CartAnswer>, tonic::Status>) -> Result<CartPayload> {
    match result {
        Ok(r) => {
            let answer = r.into_inner();
            Ok(CartPayload {
                cart: Some(Cart(answer.cart.unwrap_or_default())),
                guest_token: answer.guest_token,
                user_errors: vec![],
            })
        }
        Err(status) => Ok(CartPayload { user_errors: user_errors(status, &cart_path)?, ..Default::default() }),
    }
}

fn order_payload(
    result: std::result::Result<tonic::Response<pb::Order>, tonic::Status>,
    path: &dyn Fn(&str) -> Vec<String>,
) -> Result<OrderPayload> {
    match result {
        Ok(r) => Ok(OrderPayload { order: Some(Order(r.into_inner())), user_errors: vec![] }),
        Err(status) => Ok(OrderPayload { order: None, user_errors: user_errors(status, path)? }),
    }
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Adds `quantity` units of a product to the cart (creating its line).
    /// Without a token or `guestToken`, creates a guest cart: keep the
    /// payload's `guestToken`.
    async fn add_to_cart(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        quantity: i32,
        guest_token: Option<String>,
    ) -> Result<CartPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::AddToCartRequest { guest_token, product_id: product_id.0, quantity: quantity.into() };
        cart_payload(clients.order.clone().add_to_cart(clients.request(message, request)).await)
    }

    /// Sets the quantity of a product's line; 0 removes it.
    async fn update_cart_line(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        quantity: i32,
        guest_token: Option<String>,
    ) -> Result<CartPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::UpdateCartLineRequest { guest_token, product_id: product_id.0, quantity: quantity.into() };
        cart_payload(clients.order.clone().update_cart_line(clients.request(message, request)).await)
    }

    async fn remove_cart_line(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        guest_token: Option<String>,
    ) -> Result<CartPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::RemoveCartLineRequest { guest_token, product_id: product_id.0 };
        cart_payload(clients.order.clone().remove_cart_line(clients.request(message, request)).await)
    }

    /// Removes every line.
    async fn clear_cart(&self, ctx: &Context<'_>, guest_token: Option<String>) -> Result<CartPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::ClearCartRequest { guest_token };
        cart_payload(clients.order.clone().clear_cart(clients.request(message, request)).await)
    }

    /// Places the signed-in customer's cart as an order, taking its stock
    /// (every line or none) and emptying the cart. Idempotent by
    /// `input.idempotencyKey`: see `PlaceOrderInput`.
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> Result<OrderPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::PlaceOrderRequest {
            idempotency_key: input.idempotency_key,
            shipping_address: input.shipping_address.map(address_pb),
        };
        order_payload(clients.order.clone().place_order(clients.request(message, request)).await, &place_order_path)
    }

    /// The customer (while it is unpaid and unfulfilled) or an admin; the
    /// stock goes back.
    async fn cancel_order(&self, ctx: &Context<'_>, id: ID) -> Result<OrderPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::CancelOrderRequest { id: id.0 };
        order_payload(clients.order.clone().cancel_order(clients.request(message, request)).await, &order_path)
    }

    /// Records shipped units: a merchant (their own lines) or an admin,
    /// once the order is paid.
    async fn fulfill_order(&self, ctx: &Context<'_>, id: ID, lines: Vec<FulfillmentLineInput>) -> Result<OrderPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::FulfillOrderRequest {
            id: id.0,
            lines: lines
                .into_iter()
                .map(|l| pb::FulfillmentLine { line_id: l.line_id.0, quantity: l.quantity.into() })
                .collect(),
        };
        order_payload(clients.order.clone().fulfill_order(clients.request(message, request)).await, &order_path)
    }

    /// An admin or one of the order's merchants, once every line is
    /// fulfilled.
    async fn mark_delivered(&self, ctx: &Context<'_>, id: ID) -> Result<OrderPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::MarkDeliveredRequest { id: id.0 };
        order_payload(clients.order.clone().mark_delivered(clients.request(message, request)).await, &order_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_fields_become_input_paths() {
        assert_eq!(place_order_path("idempotencyKey"), ["input", "idempotencyKey"]);
        assert_eq!(place_order_path("shippingAddress.country"), ["input", "shippingAddress", "country"]);
        assert!(place_order_path("id").is_empty());
        assert_eq!(cart_path("quantity"), ["quantity"]);
        assert!(cart_path("id").is_empty());
        assert_eq!(order_path("lines.0.quantity"), ["lines", "0", "quantity"]);
    }

    #[test]
    fn domain_failures_become_user_errors_with_their_code() {
        use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
        // As the services send a domain error: the code is the reason.
        let mut violation = FieldViolation::new("idempotencyKey", "the key was used with another cart");
        violation.reason = "IDEMPOTENCY_KEY_REUSED".into();
        let status = tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            "invalid input",
            ErrorDetails::with_bad_request(vec![violation]),
        );
        let errors = user_errors(status, &place_order_path).unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(errors[0].field.as_deref(), Some(&["input".to_string(), "idempotencyKey".to_string()][..]));

        let gone = tonic::Status::not_found("no such product");
        let errors = user_errors(gone, &cart_path).unwrap();
        assert_eq!((errors[0].code.as_str(), errors[0].field.as_ref()), ("NOT_FOUND", None));

        assert!(user_errors(tonic::Status::unavailable("down"), &order_path).is_err(), "a top-level error");
    }

    /// The order API's signatures, as clients see them (`--nocapture`
    /// prints the SDL).
    #[tokio::test]
    async fn schema_shape() {
        let config = crate::GatewayConfig::new("http://127.0.0.1:9");
        let clients = crate::Clients::connect_lazy(&config).unwrap();
        let limiters = crate::rate_limit::RateLimiters::new(crate::RateLimits::OFF);
        let sdl = super::super::build(clients, &config.limits, limiters, true).sdl();
        println!("{sdl}");
        for signature in [
            "cart(guestToken: String): Cart!",
            "order(id: ID!): Order",
            "orders(first: Int = 20, after: String, filter: OrderFilter): OrderConnection!",
            "addToCart(productId: ID!, quantity: Int!, guestToken: String): CartPayload!",
            "placeOrder(input: PlaceOrderInput!): OrderPayload!",
            "fulfillOrder(id: ID!, lines: [FulfillmentLineInput!]!): OrderPayload!",
            "product: Product",
            "priceChanged: Boolean!",
            "payments: [Payment!]!",
            "authorizePayment(orderId: ID!, provider: String!, source: String!): PaymentPayload!",
            "capturePayment(paymentId: ID!, amount: MoneyInput): PaymentPayload!",
            "refundPayment(paymentId: ID!, amount: MoneyInput): PaymentPayload!",
            "voidPayment(paymentId: ID!): PaymentPayload!",
            "recordManualPayment(orderId: ID!, amount: MoneyInput!, reference: String!): PaymentPayload!",
            "issues: [CartIssue!]!",
            "discount: Money!",
            "notes: [String!]!",
            "plugins(merchantId: ID): [Plugin!]!",
            "plugin(name: String!, merchantId: ID): Plugin",
            "uploadPlugin(file: Upload!, kind: PluginKind!, name: String!, activate: Boolean = false, merchantId: ID): PluginPayload!",
            "activatePlugin(name: String!, version: String!, merchantId: ID): PluginPayload!",
            "rollbackPlugin(name: String!, merchantId: ID): PluginPayload!",
            "disablePlugin(name: String!, merchantId: ID): PluginPayload!",
            "configurePlugin(name: String!, merchantId: ID, settings: [PluginSettingInput!], onFailure: PluginFailureMode, position: Int): PluginPayload!",
            "previewPricing(name: String!, version: String, lines: [PreviewLineInput!]!, step: CheckoutStep = CART, settings: [PluginSettingInput!], merchantId: ID): PluginPreviewPayload!",
            "previewValidation(name: String!, version: String, lines: [PreviewLineInput!]!, step: CheckoutStep = CART, settings: [PluginSettingInput!], merchantId: ID): PluginPreviewPayload!",
            "discount: Int = 0",
            "activeVersion: String",
            "onFailure: PluginFailureMode!",
            "updatedAt: DateTime!",
            "uploadedAt: DateTime!",
            "durationP99Ms: Float!",
            "fuelP99: Int!",
            "peakMemoryBytes: Int!",
            "logsTruncated: Boolean!",
            "blocking: Boolean!",
        ] {
            assert!(sdl.contains(signature), "missing `{signature}`");
        }
    }
}
