//! `Operator`: what the operator of the host may do that no account can
//! yet, such as naming the first admin. Served on the admin port only.

use std::sync::Arc;

use pb::operator_server::Operator;
use polyscale_proto::admin::v1 as pb;
use tonic::{Request, Response, Status};

use super::account::{AccountSlot, invoke};
use crate::call::{CallInfo, Caller};

pub struct OperatorApi {
    accounts: Arc<AccountSlot>,
}

impl OperatorApi {
    pub fn new(accounts: Arc<AccountSlot>) -> Self {
        Self { accounts }
    }
}

#[tonic::async_trait]
impl Operator for OperatorApi {
    async fn grant_role(
        &self,
        request: Request<pb::GrantRoleRequest>,
    ) -> Result<Response<pb::GrantRoleResponse>, Status> {
        let pb::GrantRoleRequest { email, role, store_name } = request.into_inner();
        let operator = || CallInfo::new(uuid::Uuid::now_v7().to_string(), Some(Caller::operator()));
        let account = invoke(&self.accounts, operator(), None, |a, s| {
            Box::pin(async move { a.call_find_account_by_email(s, &email).await })
        })
        .await?
        .value;
        let id = account.id.clone();
        match role.as_str() {
            "admin" => {
                invoke(&self.accounts, operator(), None, |a, s| {
                    Box::pin(async move { a.call_grant_admin(s, &id).await })
                })
                .await?;
            }
            "merchant" => {
                invoke(&self.accounts, operator(), None, |a, s| {
                    Box::pin(async move { a.call_grant_merchant(s, &id, &store_name).await })
                })
                .await?;
            }
            other => return Err(Status::invalid_argument(format!("unknown role `{other}`; use admin or merchant"))),
        }
        tracing::info!(account = %account.id, role, "operator granted a role");
        Ok(Response::new(pb::GrantRoleResponse { account_id: account.id }))
    }
}
