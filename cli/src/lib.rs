//! The `polyscale` binary's library: the embedded system (everything in one
//! process), the sample catalog and the plugin author kit. The binary
//! (`main.rs`) is the CLI.

pub mod admin;
pub mod config;
pub mod embedded;
pub mod keys;
pub mod plugin;
pub mod plugin_run;
pub mod sample;
pub mod telemetry;
