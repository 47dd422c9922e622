//! Conversions between the host's contracts: WIT types (what components
//! see), protobuf messages (gRPC) and the other crates' domain types, in
//! both directions, with round-trip tests: a service serves with one
//! direction, and a sibling calling it over gRPC (the order service calls
//! the product and account services) needs the other. One module per
//! service contract.

pub mod account;
pub mod inventory;
pub mod order;
pub mod product;
pub mod roles;

/// A message from a peer that lacks what the contract requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} lacks `{field}`")]
pub struct MissingField {
    pub message: &'static str,
    pub field: &'static str,
}
