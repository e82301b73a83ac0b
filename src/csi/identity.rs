//! CSI Identity service: plugin name and version, capabilities, readiness.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::backend::Backend;
use super::proto::identity_server::Identity;
use super::proto::plugin_capability::{service, Service};
use super::proto::*;

pub struct IdentityService {
    pub driver_name: String,
    pub version: String,
    /// What must be reachable for the plugin to be ready: the catalog owner's admin API
    /// (controller) and/or the node's dataset server (node).
    pub backends: Vec<Arc<dyn Backend>>,
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: self.version.clone(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        // Every instance of a plugin version must report the same capabilities, so a node-only
        // instance advertises the controller service too (the deployment has one). No
        // VOLUME_ACCESSIBILITY_CONSTRAINTS: the data is in object storage, reachable from
        // every node. Expansion is ONLINE: a quota change applies to mounted volumes at once.
        let caps = vec![
            PluginCapability {
                r#type: Some(plugin_capability::Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            },
            PluginCapability {
                r#type: Some(plugin_capability::Type::VolumeExpansion(
                    plugin_capability::VolumeExpansion {
                        r#type: plugin_capability::volume_expansion::Type::Online as i32,
                    },
                )),
            },
        ];
        Ok(Response::new(GetPluginCapabilitiesResponse { capabilities: caps }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let mut ready = true;
        for b in &self.backends {
            if let Err(e) = b.ping().await {
                tracing::info!(error = %e, "probe: admin API not reachable yet");
                ready = false;
            }
        }
        Ok(Response::new(ProbeResponse { ready: Some(ready) }))
    }
}
