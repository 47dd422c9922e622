//! `ComponentAdmin`: deploy, activate (roll back) and list component
//! versions of the slots this host runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use pb::component_admin_server::ComponentAdmin;
use polyscale_proto::admin::v1 as pb;
use tonic::{Request, Response, Status};

use super::status;
use crate::registry::{DeployError, Deployable, ServiceSlot, VersionInfo};

/// A component slot, whatever its world.
#[tonic::async_trait]
pub trait ComponentSlot: Send + Sync {
    async fn deploy(&self, wasm: &[u8], activate: bool) -> Result<VersionInfo, DeployError>;
    async fn activate(&self, version: &str) -> Result<VersionInfo, DeployError>;
    async fn versions(&self) -> Result<Vec<(VersionInfo, bool)>, DeployError>;
    /// The version this process runs and its activation sequence.
    async fn running(&self) -> Option<(VersionInfo, i64)>;
}

#[tonic::async_trait]
impl<W: Deployable> ComponentSlot for ServiceSlot<W> {
    async fn deploy(&self, wasm: &[u8], activate: bool) -> Result<VersionInfo, DeployError> {
        ServiceSlot::deploy(self, wasm, activate).await
    }
    async fn activate(&self, version: &str) -> Result<VersionInfo, DeployError> {
        ServiceSlot::activate(self, version).await
    }
    async fn versions(&self) -> Result<Vec<(VersionInfo, bool)>, DeployError> {
        ServiceSlot::versions(self).await
    }
    async fn running(&self) -> Option<(VersionInfo, i64)> {
        ServiceSlot::running(self).await
    }
}

#[derive(Default, Clone)]
pub struct AdminApi {
    slots: BTreeMap<String, Arc<dyn ComponentSlot>>,
}

impl AdminApi {
    pub fn with_slot(mut self, name: &str, slot: Arc<dyn ComponentSlot>) -> Self {
        self.slots.insert(name.to_string(), slot);
        self
    }

    /// Each slot's name, the version this process runs and its activation
    /// sequence.
    pub async fn running(&self) -> Vec<(String, Option<(VersionInfo, i64)>)> {
        let mut running = Vec::new();
        for (name, slot) in &self.slots {
            running.push((name.clone(), slot.running().await));
        }
        running
    }

    fn slot(&self, name: &str) -> Result<&Arc<dyn ComponentSlot>, Status> {
        self.slots.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.slots.keys().map(String::as_str).collect();
            Status::not_found(format!("no component slot `{name}` here; this host runs: {}", known.join(", ")))
        })
    }
}

fn version_pb(info: VersionInfo, active: bool) -> pb::ComponentVersion {
    pb::ComponentVersion {
        component: info.slot.kind,
        sha256: info.version.clone(),
        version: info.version,
        size_bytes: info.size_bytes,
        source: info.source.as_str().to_string(),
        created_at_ms: info.created_at_ms,
        active,
    }
}

#[tonic::async_trait]
impl ComponentAdmin for AdminApi {
    async fn deploy_component(
        &self,
        request: Request<pb::DeployComponentRequest>,
    ) -> Result<Response<pb::ComponentVersion>, Status> {
        let r = request.into_inner();
        let slot = self.slot(&r.component)?;
        let info = slot.deploy(&r.wasm, r.activate).await.map_err(status::deploy_error)?;
        tracing::info!(component = %r.component, version = %info.version, activate = r.activate, "component deployed");
        Ok(Response::new(version_pb(info, r.activate)))
    }

    async fn activate_version(
        &self,
        request: Request<pb::ActivateVersionRequest>,
    ) -> Result<Response<pb::ComponentVersion>, Status> {
        let r = request.into_inner();
        let info = self.slot(&r.component)?.activate(&r.version).await.map_err(status::deploy_error)?;
        Ok(Response::new(version_pb(info, true)))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        let r = request.into_inner();
        let versions = self.slot(&r.component)?.versions().await.map_err(status::deploy_error)?;
        Ok(Response::new(pb::ListVersionsResponse {
            versions: versions.into_iter().map(|(v, active)| version_pb(v, active)).collect(),
        }))
    }
}
