//! End-to-end tests: the real embedded system on free ports, driven over
//! GraphQL (HTTP) and gRPC.

mod accounts;
mod admin_plane;
mod app;
mod bad_input;
mod binary;
mod catalog;
mod config;
mod distributed;
mod edge;
mod faults;
mod graphiql;
mod hot_swap;
mod orders;
mod payments;
mod plugin_api;
mod plugin_kit;
mod plugins;
mod search;
mod sql_isolation;
