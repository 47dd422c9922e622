//! `PluginService` over gRPC: merchants' plugin uploads, lifecycle and dry
//! runs, answered by the [`PluginHost`] of the order service.
//!
//! Every call needs a signed-in merchant, acting on their own plugins, or
//! an admin, acting on anyone's (naming `merchant_id`). A merchant naming
//! another merchant gets NOT_FOUND, as for a plugin that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use polyscale_proto::plugin::v1 as pb;
use polyscale_proto::plugin::v1::plugin_service_server::PluginService;
pub use polyscale_proto::plugin::v1::plugin_service_server::PluginServiceServer;
use polyscale_proto::types::v1::Money as PbMoney;
use tonic::{Request, Response, Status};

use super::{Authenticator, status};
use crate::bindings::plugin::types::{Cart, Change, Line, Money, Setting, Step};
use crate::bindings::types::{DomainError, FieldError};
use crate::call::{CallInfo, Role};
use crate::plugins::runner::RunReport;
use crate::plugins::{FailureMode, PluginError, PluginHost, PluginKind, PluginView, Preview};

pub struct PluginApi {
    plugins: Arc<PluginHost>,
    auth: Authenticator,
}

impl PluginApi {
    pub fn new(plugins: Arc<PluginHost>, auth: Authenticator) -> Self {
        Self { plugins, auth }
    }

    /// The call's facts and the merchant whose plugins it may act on.
    async fn merchant<T>(&self, request: &Request<T>, named: &str) -> Result<(CallInfo, String), Status> {
        let (info, _) = self.auth.call_info(request).await?;
        let caller = info.caller.as_ref().ok_or_else(|| status::unauthenticated("sign in to manage plugins"))?;
        let admin = caller.roles.contains(&Role::Admin);
        if !admin && !caller.roles.contains(&Role::Merchant) {
            return Err(status::forbidden("only merchants and admins have plugins"));
        }
        let merchant = if named.is_empty() { caller.account_id.clone() } else { named.to_string() };
        if merchant != caller.account_id && !admin {
            // As for a plugin that does not exist: no probing.
            return Err(status::domain_error(DomainError::NotFound("no such plugin".into()), &info.request_id));
        }
        Ok((info, merchant))
    }
}

fn plugin_error(e: PluginError, request_id: &str) -> Status {
    let invalid = |field: &str, code: &str, message: String| {
        status::domain_error(
            DomainError::Invalid(vec![FieldError { field: field.into(), code: code.into(), message }]),
            request_id,
        )
    };
    match e {
        PluginError::NotFound(what) => {
            status::domain_error(DomainError::NotFound(format!("no plugin or call `{what}`")), request_id)
        }
        PluginError::Invalid { field, code, message } => invalid(field, code, message),
        e @ PluginError::WrongKind { .. } => invalid("kind", "WRONG_KIND", e.to_string()),
        e @ PluginError::NoPreviousVersion(_) => status::failed_precondition("NO_PREVIOUS_VERSION", &e.to_string()),
        PluginError::Deploy(e) => status::deploy_error(e),
        PluginError::Storage(e) => {
            tracing::error!(request_id, error = ?e, "plugin storage failed");
            Status::unavailable("plugin storage is unavailable; retry later")
        }
    }
}

fn kind_in(kind: i32) -> Option<PluginKind> {
    match pb::PluginKind::try_from(kind).ok()? {
        pb::PluginKind::Pricing => Some(PluginKind::Pricing),
        pb::PluginKind::Validation => Some(PluginKind::Validation),
        pb::PluginKind::Unspecified => None,
    }
}

fn kind_out(kind: PluginKind) -> pb::PluginKind {
    match kind {
        PluginKind::Pricing => pb::PluginKind::Pricing,
        PluginKind::Validation => pb::PluginKind::Validation,
    }
}

fn plugin_out(view: PluginView) -> pb::Plugin {
    let r = view.record;
    pb::Plugin {
        merchant_id: r.merchant_id,
        name: r.name,
        kind: kind_out(r.kind) as i32,
        enabled: r.enabled,
        active_version: view.active_version.unwrap_or_default(),
        position: r.position,
        on_failure: match r.on_failure {
            FailureMode::Block => pb::FailureMode::Block,
            FailureMode::Skip => pb::FailureMode::Skip,
        } as i32,
        settings: r.settings.into_iter().map(|(name, value)| pb::Setting { name, value }).collect(),
        versions: view
            .versions
            .into_iter()
            .map(|(v, upload, active)| pb::PluginVersion {
                sha256: v.version,
                size_bytes: v.size_bytes,
                uploaded_by: upload.as_ref().map(|u| u.uploaded_by.clone()).unwrap_or_default(),
                uploaded_at_ms: upload.map_or(v.created_at_ms, |u| u.uploaded_at_ms),
                active,
            })
            .collect(),
        stats: Some(pb::PluginStats {
            calls: view.stats.calls,
            failures: view
                .stats
                .failures
                .into_iter()
                .map(|(kind, count)| pb::FailureCount { kind: kind.to_string(), count })
                .collect(),
            duration_p50_ms: view.stats.duration_p50.as_secs_f64() * 1e3,
            duration_p99_ms: view.stats.duration_p99.as_secs_f64() * 1e3,
            fuel_p99: view.stats.fuel_p99,
        }),
        updated_at_ms: r.updated_at_ms,
    }
}

fn settings_in(settings: Vec<pb::Setting>) -> BTreeMap<String, String> {
    settings.into_iter().map(|s| (s.name, s.value)).collect()
}

fn pb_money(amount: i64, currency: &str) -> Option<PbMoney> {
    Some(PbMoney { amount, currency: currency.to_string() })
}

fn report_out<T>(report: &RunReport<T>, result: &mut pb::PreviewResult) {
    if let Err(failure) = &report.outcome {
        result.failure = failure.kind.as_str().to_string();
        result.error = failure.message.clone();
    }
    result.fuel_used = report.fuel_used;
    result.peak_memory_bytes = report.peak_memory_bytes;
    result.duration_us = report.duration.as_micros().min(u64::MAX as u128) as u64;
    result.logs = report.log.clone();
    result.logs_truncated = report.log_truncated;
    result.version = report.version.clone();
}

fn preview_out(preview: Preview) -> pb::PreviewResult {
    let mut result = pb::PreviewResult::default();
    match preview {
        Preview::Pricing(report) => {
            report_out(&report, &mut result);
            if let Ok((adjustments, lines, _)) = report.outcome {
                result.adjustments = adjustments
                    .into_iter()
                    .map(|a| pb::Adjustment {
                        line: a.line,
                        change: Some(match a.change {
                            Change::UnitPrice(p) => pb::adjustment::Change::UnitPrice(p),
                            Change::Discount(d) => pb::adjustment::Change::Discount(d),
                        }),
                        message: a.message,
                    })
                    .collect();
                result.lines = lines
                    .into_iter()
                    .map(|l| {
                        let total = l.unit_price.amount.saturating_mul(l.quantity).saturating_sub(l.discount);
                        pb::PricedLine {
                            product_id: l.product_id,
                            quantity: l.quantity,
                            unit_price: pb_money(l.unit_price.amount, &l.unit_price.currency),
                            discount: l.discount,
                            line_total: pb_money(total, &l.unit_price.currency),
                        }
                    })
                    .collect();
            }
        }
        Preview::Validation(report) => {
            report_out(&report, &mut result);
            if let Ok(violations) = report.outcome {
                result.violations = violations
                    .into_iter()
                    .map(|v| pb::Violation { code: v.code, message: v.message, target: v.target })
                    .collect();
            }
        }
    }
    result
}

/// Most lines a dry run takes (the input cap bounds it too).
const MAX_PREVIEW_LINES: usize = 1_000;

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn upload_plugin(&self, request: Request<pb::UploadPluginRequest>) -> Result<Response<pb::Plugin>, Status> {
        let named = request.get_ref().plugin.as_ref().map(|p| p.merchant_id.clone()).unwrap_or_default();
        let (info, merchant) = self.merchant(&request, &named).await?;
        let uploaded_by = info.caller.as_ref().map(|c| c.account_id.clone()).unwrap_or_default();
        let r = request.into_inner();
        let name = r.plugin.map(|p| p.name).unwrap_or_default();
        let kind = kind_in(r.kind).ok_or_else(|| {
            plugin_error(
                PluginError::Invalid {
                    field: "kind",
                    code: "INVALID_KIND",
                    message: "kind is PRICING or VALIDATION".into(),
                },
                &info.request_id,
            )
        })?;
        let view = self
            .plugins
            .upload(&merchant, &name, kind, &r.wasm, &uploaded_by, r.activate)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn list_plugins(
        &self,
        request: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        let named = request.get_ref().merchant_id.clone();
        let (info, merchant) = self.merchant(&request, &named).await?;
        let views = self.plugins.list(&merchant).await.map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(pb::ListPluginsResponse { plugins: views.into_iter().map(plugin_out).collect() }))
    }

    async fn get_plugin(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        let (info, merchant) = self.merchant(&request, &request.get_ref().merchant_id.clone()).await?;
        let view = self
            .plugins
            .get(&merchant, &request.get_ref().name)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn activate_plugin(
        &self,
        request: Request<pb::ActivatePluginRequest>,
    ) -> Result<Response<pb::Plugin>, Status> {
        let plugin = request.get_ref().plugin.clone().unwrap_or_default();
        let (info, merchant) = self.merchant(&request, &plugin.merchant_id).await?;
        let view = self
            .plugins
            .activate(&merchant, &plugin.name, &request.get_ref().version)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn rollback_plugin(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        let (info, merchant) = self.merchant(&request, &request.get_ref().merchant_id.clone()).await?;
        let view = self
            .plugins
            .rollback(&merchant, &request.get_ref().name)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn disable_plugin(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        let (info, merchant) = self.merchant(&request, &request.get_ref().merchant_id.clone()).await?;
        let view = self
            .plugins
            .disable(&merchant, &request.get_ref().name)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn configure_plugin(
        &self,
        request: Request<pb::ConfigurePluginRequest>,
    ) -> Result<Response<pb::Plugin>, Status> {
        let plugin = request.get_ref().plugin.clone().unwrap_or_default();
        let (info, merchant) = self.merchant(&request, &plugin.merchant_id).await?;
        let r = request.into_inner();
        let settings = r.replace_settings.then(|| settings_in(r.settings));
        let on_failure = match pb::FailureMode::try_from(r.on_failure).unwrap_or_default() {
            pb::FailureMode::Block => Some(FailureMode::Block),
            pb::FailureMode::Skip => Some(FailureMode::Skip),
            pb::FailureMode::Unspecified => None,
        };
        let view = self
            .plugins
            .configure(&merchant, &plugin.name, settings, on_failure, r.position)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(plugin_out(view)))
    }

    async fn preview_plugin(
        &self,
        request: Request<pb::PreviewPluginRequest>,
    ) -> Result<Response<pb::PreviewResult>, Status> {
        let plugin = request.get_ref().plugin.clone().unwrap_or_default();
        let (info, merchant) = self.merchant(&request, &plugin.merchant_id).await?;
        let r = request.into_inner();
        let invalid = |field: &'static str, message: String| {
            plugin_error(PluginError::Invalid { field, code: "INVALID_INPUT", message }, &info.request_id)
        };
        if r.lines.len() > MAX_PREVIEW_LINES {
            return Err(invalid("lines", format!("at most {MAX_PREVIEW_LINES} lines")));
        }
        let mut lines = Vec::with_capacity(r.lines.len());
        for (i, l) in r.lines.into_iter().enumerate() {
            let price = l.unit_price.unwrap_or_default();
            if l.quantity < 1 || price.amount < 0 || l.discount < 0 || price.currency.is_empty() {
                return Err(invalid(
                    "lines",
                    format!("line {i}: quantity at least 1, a currency, and no negative price or discount"),
                ));
            }
            lines.push(Line {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price: Money { amount: price.amount, currency: price.currency },
                discount: l.discount,
            });
        }
        let stored = self.plugins.get(&merchant, &plugin.name).await.map_err(|e| plugin_error(e, &info.request_id))?;
        let settings = if r.override_settings { settings_in(r.settings) } else { stored.record.settings.clone() };
        let cart = Cart {
            step: if r.step == pb::Step::Checkout as i32 { Step::Checkout } else { Step::Cart },
            merchant_id: merchant.clone(),
            lines,
            settings: settings.into_iter().map(|(name, value)| Setting { name, value }).collect(),
        };
        let version = (!r.version.is_empty()).then_some(r.version.as_str());
        let preview = self
            .plugins
            .preview(&merchant, &plugin.name, kind_in(r.kind), version, cart, &info)
            .await
            .map_err(|e| plugin_error(e, &info.request_id))?;
        Ok(Response::new(preview_out(preview)))
    }
}
