//! Conversions between the host's contracts: WIT types (what components
//! see), protobuf messages (gRPC) and the other crates' domain types, in
//! both directions, with round-trip tests. One module per contract; the
//! services' request/response conversions are still in
//! `services/*/convert.rs` and move here as each gains its reverse
//! direction (the order service needs them).

pub mod roles;
