//! The admin plane is apart from the data plane: an anonymous client of
//! the services' port (the one the gateway uses) can list, deploy,
//! activate, grant and reindex nothing. The operator reaches them through
//! the data directory's socket (mode 0600), and TCP admin listeners need
//! the operator token (`binary::a_tcp_admin_plane_needs_the_operator_token`).

use polyscale_proto::admin::v1 as admin;
use polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient;
use polyscale_proto::admin::v1::operator_client::OperatorClient;
use polyscale_proto::admin::v1::search_admin_client::SearchAdminClient;

use crate::app::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_clients_of_the_services_port_reach_no_admin_service() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("mallory@example.com", "a long enough password").await;
    let before = app.active_version().await;
    let channel = app.channel().await;
    let mut components = ComponentAdminClient::new(channel.clone());
    let unimplemented = |what: &str, status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{what}: {status:?}");
    };

    let listed = components.list_versions(admin::ListVersionsRequest { component: "product".into() }).await;
    unimplemented("list", listed.unwrap_err());
    let deployed = components
        .deploy_component(admin::DeployComponentRequest {
            component: "product".into(),
            wasm: polyscale_host::components::PRODUCT.to_vec(),
            activate: true,
        })
        .await;
    unimplemented("deploy", deployed.unwrap_err());
    let activated = components
        .activate_version(admin::ActivateVersionRequest { component: "product".into(), version: before.clone() })
        .await;
    unimplemented("activate", activated.unwrap_err());
    let granted = OperatorClient::new(channel.clone())
        .grant_role(admin::GrantRoleRequest {
            email: "mallory@example.com".into(),
            role: "admin".into(),
            store_name: String::new(),
        })
        .await;
    unimplemented("grant", granted.unwrap_err());
    let reindexed = SearchAdminClient::new(channel).reindex(admin::ReindexRequest { index: "products".into() }).await;
    unimplemented("reindex", reindexed.unwrap_err());

    // Nothing changed: still one version, and Mallory is no admin.
    let versions = app.admin().await.list_versions(admin::ListVersionsRequest { component: "product".into() }).await;
    assert_eq!(versions.unwrap().into_inner().versions.len(), 1);
    assert_eq!(app.active_version().await, before);
    let roles = app.login("mallory@example.com", "a long enough password").await["account"]["roles"].clone();
    assert_eq!(roles, serde_json::json!(["CUSTOMER"]));

    // The operator's way in is a socket only this user can open.
    use std::os::unix::fs::PermissionsExt;
    let polyscale::admin::AdminAddress::Unix(socket) = &app.admin_address else { panic!("a socket by default") };
    assert_eq!(std::fs::metadata(socket).unwrap().permissions().mode() & 0o777, 0o600);
}
