//! PolyScale's gRPC contracts (tonic + prost), generated from `proto/`.

pub mod types {
    pub mod v1 {
        tonic::include_proto!("polyscale.types.v1");
    }
}

pub mod product {
    pub mod v1 {
        tonic::include_proto!("polyscale.product.v1");
    }
}

pub mod account {
    pub mod v1 {
        tonic::include_proto!("polyscale.account.v1");
    }
}

pub mod order {
    pub mod v1 {
        tonic::include_proto!("polyscale.order.v1");
    }
}

pub mod plugin {
    pub mod v1 {
        tonic::include_proto!("polyscale.plugin.v1");
    }
}

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("polyscale.admin.v1");
    }
}

/// Encoded `FileDescriptorSet` of every PolyScale service, for gRPC
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Metadata keys shared by clients and servers.
pub mod metadata {
    /// Correlates one request across gateway, services and components.
    pub const REQUEST_ID: &str = "x-request-id";
    /// Names the component version that served a call (response metadata).
    pub const COMPONENT_VERSION: &str = "x-polyscale-component-version";
    /// The end client's address, as the gateway saw it (for throttling).
    pub const CLIENT_ADDRESS: &str = "x-polyscale-client-address";
    /// A service token (see `polyscale_auth::ServiceTokenIssuer`) naming the
    /// calling service: only a call carrying the gateway's has its
    /// `CLIENT_ADDRESS` believed; only the order service's opens
    /// `InventoryService`.
    pub const SERVICE_TOKEN: &str = "x-polyscale-service-token";
    /// The gateway's use of [`SERVICE_TOKEN`].
    pub const GATEWAY_TOKEN: &str = SERVICE_TOKEN;
    /// `Bearer <access token>`.
    pub const AUTHORIZATION: &str = "authorization";
}

pub mod channel;
pub mod trace;
