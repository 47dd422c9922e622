//! The components built into this binary (by `build.rs`, from `plugins/`).

include!(concat!(env!("OUT_DIR"), "/components.rs"));
