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

/// Channels to a service's replicas.
pub mod channel {
    use std::time::Duration;

    use tonic::transport::{Channel, Endpoint};

    /// Why a service URL cannot be used.
    #[derive(Debug)]
    pub struct InvalidEndpoint {
        pub endpoint: String,
        pub reason: String,
    }

    impl std::fmt::Display for InvalidEndpoint {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "invalid service endpoint `{}`: {}", self.endpoint, self.reason)
        }
    }

    impl std::error::Error for InvalidEndpoint {}

    /// A channel to a service at `urls`: one URL, or its replicas, over
    /// which calls are balanced (power of two choices over the connected
    /// ones; a replica that is down is skipped until it is back).
    /// Connections open on first use and reopen after a restart; no
    /// socket waits on Nagle's algorithm. `timeout`, if any, bounds every
    /// call.
    pub fn lazy(urls: &[String], timeout: Option<Duration>) -> Result<Channel, InvalidEndpoint> {
        let endpoints = urls
            .iter()
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| InvalidEndpoint { endpoint: url.clone(), reason: e.to_string() })?
                    .connect_timeout(Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(20))
                    .keep_alive_timeout(Duration::from_secs(10));
                Ok(match timeout {
                    Some(t) => endpoint.timeout(t),
                    None => endpoint,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match endpoints.as_slice() {
            [] => Err(InvalidEndpoint { endpoint: String::new(), reason: "no URL given".into() }),
            [one] => Ok(one.clone().connect_lazy()),
            _ => Ok(Channel::balance_list(endpoints.into_iter())),
        }
    }
}
