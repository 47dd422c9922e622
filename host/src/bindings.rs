//! Every `bindgen!` of the host, in one place.
//!
//! The capability interfaces (`types`, `context`, `logging`, `sql`) are
//! generated once, from the `domain-imports` world, and every service world
//! reuses them through `with:`, so each WIT type has exactly one Rust type and
//! each capability one `Host` implementation.

mod imports {
    wasmtime::component::bindgen!({
        world: "polyscale:commerce/domain-imports",
        path: "../wit",
        imports: {
            "polyscale:commerce/sql": async | trappable,
            default: trappable,
        },
        with: {
            "polyscale:commerce/sql.transaction": crate::database::Transaction,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use account::polyscale::commerce::credentials;
pub use imports::polyscale::commerce::{context, logging, sql, types};
pub use product::polyscale::commerce::search;

/// The product service world.
pub mod product {
    wasmtime::component::bindgen!({
        world: "polyscale:commerce/product-service",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "polyscale:commerce/types": super::types,
            "polyscale:commerce/context": super::context,
            "polyscale:commerce/logging": super::logging,
            "polyscale:commerce/sql": super::sql,
        },
    });
}

/// The account service world; it alone imports `credentials`.
pub mod account {
    wasmtime::component::bindgen!({
        world: "polyscale:commerce/account-service",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "polyscale:commerce/types": super::types,
            "polyscale:commerce/context": super::context,
            "polyscale:commerce/logging": super::logging,
            "polyscale:commerce/sql": super::sql,
        },
    });
}

/// The order service world; it imports narrow views of its siblings
/// (`catalog`, `inventory`, `customers`), which the host answers over gRPC.
/// `inventory` is the product world's export, the same WIT interface.
pub mod order {
    wasmtime::component::bindgen!({
        world: "polyscale:commerce/order-service",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "polyscale:commerce/types": super::types,
            "polyscale:commerce/context": super::context,
            "polyscale:commerce/logging": super::logging,
            "polyscale:commerce/sql": super::sql,
        },
    });
}

/// The merchant plugin worlds (`polyscale:plugin@1.0.0`, a package of its
/// own). `types` and `log` are generated once, with `pricing`, and reused by
/// `validation`.
pub mod plugin {
    pub mod pricing {
        wasmtime::component::bindgen!({
            world: "polyscale:plugin/pricing",
            path: "../wit/plugin",
            imports: { default: trappable },
            exports: { default: async },
            additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        });
    }

    pub mod validation {
        wasmtime::component::bindgen!({
            world: "polyscale:plugin/validation",
            path: "../wit/plugin",
            imports: { default: trappable },
            exports: { default: async },
            additional_derives: [PartialEq],
            with: {
                "polyscale:plugin/types": super::pricing::polyscale::plugin::types,
                "polyscale:plugin/log": super::pricing::polyscale::plugin::log,
            },
        });
    }

    pub use pricing::polyscale::plugin::{log, types};
}
