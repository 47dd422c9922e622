//! The order component: carts, order placement and the order lifecycle.
//!
//! All state lives in the component's own SQL database (see
//! [`migrations`]); the component is stateless and instantiated per call.
//! It reaches its siblings only through three narrow imports the host
//! answers over gRPC: `catalog` (products and prices by id), `inventory`
//! (stock reservations keyed by order id) and `customers` (the caller's
//! account). Authorization is checked here against the verified caller in
//! the call context, not only at the gateway.
//!
//! - [`cart`]: carts of signed-in customers and of guests (by a token of
//!   which only the hash is stored), priced live on every read.
//! - [`placement`]: `place-order` with Idempotency-Key semantics; stock is
//!   committed before the order is written.
//! - [`views`]: who sees which orders, and which of their lines.
//! - [`lifecycle`]: cancel, fulfil, deliver, by one transition table.
//! - [`payments`]: authorize, capture, refund, void, manual payments and
//!   verified provider events; the order's payment status follows them.
//!   Providers are the host's `payments` import (keys stay in the host).
//! - [`pricing`]: the merchants' pricing and validation plugins, which the
//!   host runs (`extensions`) when a cart is priced and an order placed.
//! - [`upkeep`]: finishing what crashed halfway, forgetting old keys.

mod cart;
mod lifecycle;
mod migrations;
mod payments;
mod placement;
mod pricing;
mod status;
mod support;
mod upkeep;
mod views;

mod bindings {
    wit_bindgen::generate!({
        world: "order-service",
        path: "../../wit",
        with: {
            "polyscale:commerce/types@0.1.0": polyscale_guest::bindings::types,
            "polyscale:commerce/context@0.1.0": polyscale_guest::bindings::context,
            "polyscale:commerce/logging@0.1.0": polyscale_guest::bindings::logging,
            "polyscale:commerce/sql@0.1.0": polyscale_guest::bindings::sql,
            "polyscale:commerce/catalog@0.1.0": generate,
            "polyscale:commerce/inventory@0.1.0": generate,
            "polyscale:commerce/customers@0.1.0": generate,
            "polyscale:commerce/payments@0.1.0": generate,
            "polyscale:commerce/extensions@0.1.0": generate,
        },
    });
}

use bindings::exports::polyscale::commerce::{order_payments, order_upkeep, orders};
use order_payments::{Payment, PaymentAnswer, PaymentEvent};
use orders::{CartAnswer, CartRef, FulfillmentLine, Order, OrderFilter, OrderPage, PlaceOrderInput};
use polyscale_guest::{DomainError, Money, PageRequest};

struct Component;

impl orders::Guest for Component {
    fn get_cart(which: CartRef) -> Result<CartAnswer, DomainError> {
        cart::get_cart(which)
    }

    fn add_to_cart(which: CartRef, product_id: String, quantity: i64) -> Result<CartAnswer, DomainError> {
        cart::add_to_cart(which, product_id, quantity)
    }

    fn update_cart_line(which: CartRef, product_id: String, quantity: i64) -> Result<CartAnswer, DomainError> {
        cart::update_cart_line(which, product_id, quantity)
    }

    fn remove_cart_line(which: CartRef, product_id: String) -> Result<CartAnswer, DomainError> {
        cart::remove_cart_line(which, product_id)
    }

    fn clear_cart(which: CartRef) -> Result<CartAnswer, DomainError> {
        cart::clear_cart(which)
    }

    fn place_order(input: PlaceOrderInput) -> Result<Order, DomainError> {
        placement::place_order(input)
    }

    fn get_order(id: String) -> Result<Order, DomainError> {
        views::get_order(id)
    }

    fn list_orders(page: PageRequest, filter: OrderFilter) -> Result<OrderPage, DomainError> {
        views::list_orders(page, filter)
    }

    fn cancel_order(id: String) -> Result<Order, DomainError> {
        lifecycle::cancel_order(id)
    }

    fn fulfill_order(id: String, lines: Vec<FulfillmentLine>) -> Result<Order, DomainError> {
        lifecycle::fulfill_order(id, lines)
    }

    fn mark_delivered(id: String) -> Result<Order, DomainError> {
        lifecycle::mark_delivered(id)
    }
}

impl order_payments::Guest for Component {
    fn authorize_payment(order_id: String, provider: String, source: String) -> Result<PaymentAnswer, DomainError> {
        payments::authorize_payment(order_id, provider, source)
    }

    fn capture_payment(payment_id: String, amount: Option<Money>) -> Result<PaymentAnswer, DomainError> {
        payments::capture_payment(payment_id, amount)
    }

    fn refund_payment(payment_id: String, amount: Option<Money>) -> Result<PaymentAnswer, DomainError> {
        payments::refund_payment(payment_id, amount)
    }

    fn void_payment(payment_id: String) -> Result<PaymentAnswer, DomainError> {
        payments::void_payment(payment_id)
    }

    fn record_manual_payment(order_id: String, amount: Money, reference: String) -> Result<PaymentAnswer, DomainError> {
        payments::record_manual_payment(order_id, amount, reference)
    }

    fn list_payments(order_id: String) -> Result<Vec<Payment>, DomainError> {
        payments::list_payments(order_id)
    }

    fn apply_payment_event(event: PaymentEvent) -> Result<bool, DomainError> {
        payments::apply_payment_event(event)
    }
}

impl order_upkeep::Guest for Component {
    fn run(keep_keys_ms: i64, limit: u32) -> Result<u32, DomainError> {
        upkeep::run(keep_keys_ms, limit)
    }
}

bindings::export!(Component with_types_in bindings);
