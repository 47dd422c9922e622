//! Service modules: each domain service is one module that contributes its
//! gRPC services, health names, admin hooks and background tasks. The host
//! ([`crate::server`]) builds the configured modules and iterates over
//! them; adding a service adds a module, not edits across the server.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;

use super::Authenticator;
use super::admin::{AdminApi, ComponentSlot};
use super::search_admin::SearchAdminApi;
use crate::capabilities::search::SearchService;
use crate::capabilities::search::rebuild::DocumentSource;

/// What modules add to the host's listeners.
#[derive(Default)]
pub struct Planes {
    /// The data plane: gRPC services called by the gateway and sibling
    /// services.
    pub grpc: RoutesBuilder,
    /// The admin plane: a module's operator services, served on the admin
    /// listener only ([`crate::admin_plane`]).
    pub admin: RoutesBuilder,
    /// gRPC health names to report serving.
    pub health: Vec<&'static str>,
    /// Component slots, for `ComponentAdmin`.
    pub components: AdminApi,
    /// Search indexes, for `SearchAdmin`.
    pub indexes: SearchAdminApi,
}

impl Planes {
    pub fn add_slot(&mut self, name: &str, slot: Arc<dyn ComponentSlot>) {
        self.components = std::mem::take(&mut self.components).with_slot(name, slot);
    }

    pub fn add_index(&mut self, name: &str, service: Arc<SearchService>, source: Arc<dyn DocumentSource>) {
        self.indexes = std::mem::take(&mut self.indexes).with_index(name, service, source);
    }
}

/// One domain service in a host process.
pub trait ServiceModule: Send + Sync {
    /// The service's name ("product"), also its component slot's.
    fn name(&self) -> &'static str;
    /// Adds the module's services to the planes; `auth` turns request
    /// metadata into a verified caller.
    fn register(&self, auth: &Authenticator, planes: &mut Planes);
    /// Starts background work (drainers, sweepers) that stops with `stop`.
    fn spawn_background(&self, _stop: &CancellationToken) {}
    /// The public key (PEM) of the tokens this module issues, if any; the
    /// host verifies tokens with it when none is configured.
    fn token_public_key(&self) -> Option<String> {
        None
    }
}
