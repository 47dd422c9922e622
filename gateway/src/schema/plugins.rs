//! Merchant plugins (`PluginService`, served by the order service's host):
//! the list, uploads, activation, rollback, settings and dry runs on a
//! sample cart.
//!
//! A merchant acts on their own plugins; an admin on anyone's, naming
//! `merchantId`. Another merchant's plugin is `NOT_FOUND` (`plugin`
//! answers `null`), never `FORBIDDEN`, so names do not leak. Refusals of
//! the input (`TOO_LARGE`, `INVALID_COMPONENT`, `INCOMPATIBLE_COMPONENT`,
//! `WRONG_KIND`, field violations, `NOT_FOUND`, `NO_PREVIOUS_VERSION`) are
//! `userErrors`; a caller without a token or the role gets the top-level
//! `UNAUTHENTICATED` or `FORBIDDEN`. The file of `uploadPlugin` comes in a
//! GraphQL multipart request ([`crate::multipart`]).

use std::io::Read;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject, Upload};
use chrono::{DateTime, Utc};
use polyscale_proto::plugin::v1 as pb;
use polyscale_proto::types::v1 as types;
use tonic_types::StatusExt;

use super::money::{Money, MoneyInput};
use super::product::timestamp;
use super::{clients, request_context};
use crate::errors::{self, Code, UserError, api_error};
use crate::rate_limit::{self, Class};

/// What a plugin does.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PluginKind {
    /// Changes the prices of the merchant's lines (WIT world `pricing`).
    Pricing,
    /// Accepts or refuses carts with the merchant's lines (WIT world
    /// `validation`).
    Validation,
}

impl PluginKind {
    pub(crate) fn to_pb(self) -> pb::PluginKind {
        match self {
            PluginKind::Pricing => pb::PluginKind::Pricing,
            PluginKind::Validation => pb::PluginKind::Validation,
        }
    }

    fn from_pb(value: i32) -> Option<Self> {
        match pb::PluginKind::try_from(value).ok()? {
            pb::PluginKind::Unspecified => None,
            pb::PluginKind::Pricing => Some(PluginKind::Pricing),
            pb::PluginKind::Validation => Some(PluginKind::Validation),
        }
    }

    /// The lower-case name used outside GraphQL (`PUT /plugins/{name}?kind=`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "pricing" => Some(PluginKind::Pricing),
            "validation" => Some(PluginKind::Validation),
            _ => None,
        }
    }

    pub(crate) fn name_of(value: i32) -> &'static str {
        match Self::from_pb(value) {
            Some(PluginKind::Pricing) => "pricing",
            Some(PluginKind::Validation) => "validation",
            None => "unspecified",
        }
    }
}

/// What happens to a cart when the plugin fails (a trap, a limit, an
/// invalid answer).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PluginFailureMode {
    /// The cart cannot be checked out (the default): never a silently
    /// wrong price or an unchecked order.
    Block,
    /// The plugin is left out of that call; the failure is counted.
    Skip,
}

impl PluginFailureMode {
    fn to_pb(self) -> pb::FailureMode {
        match self {
            PluginFailureMode::Block => pb::FailureMode::Block,
            PluginFailureMode::Skip => pb::FailureMode::Skip,
        }
    }

    fn from_pb(value: i32) -> Option<Self> {
        match pb::FailureMode::try_from(value).ok()? {
            // BLOCK is the documented default.
            pb::FailureMode::Unspecified | pb::FailureMode::Block => Some(PluginFailureMode::Block),
            pb::FailureMode::Skip => Some(PluginFailureMode::Skip),
        }
    }
}

/// Why a plugin is called.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CheckoutStep {
    /// To show the cart.
    Cart,
    /// To place an order.
    Checkout,
}

impl CheckoutStep {
    fn to_pb(self) -> pb::Step {
        match self {
            CheckoutStep::Cart => pb::Step::Cart,
            CheckoutStep::Checkout => pb::Step::Checkout,
        }
    }
}

/// An enum value the service should never send.
fn unknown(what: &str, value: i32) -> async_graphql::Error {
    tracing::error!(what, value, "the plugin service sent an unknown enum value");
    api_error(Code::InternalServerError, "internal error")
}

/// A merchant's plugin: its versions, which one runs, and how.
#[derive(Clone)]
pub struct Plugin(pb::Plugin);

#[Object]
impl Plugin {
    async fn merchant_id(&self) -> ID {
        ID(self.0.merchant_id.clone())
    }
    /// Unique among the merchant's plugins.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> Result<PluginKind> {
        PluginKind::from_pb(self.0.kind).ok_or_else(|| unknown("PluginKind", self.0.kind))
    }
    /// Whether it runs on carts and orders.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// The SHA-256 of the live version; `null` when none was ever
    /// activated.
    async fn active_version(&self) -> Option<&str> {
        Some(self.0.active_version.as_str()).filter(|v| !v.is_empty())
    }
    /// Where it runs among the merchant's plugins of its kind (ascending).
    async fn position(&self) -> i32 {
        self.0.position
    }
    async fn on_failure(&self) -> Result<PluginFailureMode> {
        PluginFailureMode::from_pb(self.0.on_failure).ok_or_else(|| unknown("FailureMode", self.0.on_failure))
    }
    /// What the plugin is given on every call.
    async fn settings(&self) -> Vec<PluginSetting> {
        self.0.settings.iter().map(|s| PluginSetting { name: s.name.clone(), value: s.value.clone() }).collect()
    }
    /// Newest first.
    async fn versions(&self) -> Vec<PluginVersion> {
        self.0.versions.iter().cloned().map(PluginVersion).collect()
    }
    /// The serving process's figures since it started.
    async fn stats(&self) -> PluginStats {
        PluginStats(self.0.stats.clone().unwrap_or_default())
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
}

/// One uploaded build of a plugin.
#[derive(Clone)]
pub struct PluginVersion(pb::PluginVersion);

#[Object]
impl PluginVersion {
    /// The version's id: the SHA-256 of the component, in hex.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }
    async fn size_bytes(&self) -> u64 {
        self.0.size_bytes
    }
    /// The account that uploaded it.
    async fn uploaded_by(&self) -> ID {
        ID(self.0.uploaded_by.clone())
    }
    async fn uploaded_at(&self) -> DateTime<Utc> {
        timestamp(self.0.uploaded_at_ms)
    }
    /// Whether it is the live version.
    async fn active(&self) -> bool {
        self.0.active
    }
}

/// Calls of a plugin in the serving process since it started.
pub struct PluginStats(pb::PluginStats);

#[Object]
impl PluginStats {
    async fn calls(&self) -> u64 {
        self.0.calls
    }
    /// By kind of failure: `trap`, `fuel`, `memory`, `time`,
    /// `invalid_output`.
    async fn failures(&self) -> Vec<PluginFailureCount> {
        self.0.failures.iter().map(|f| PluginFailureCount { kind: f.kind.clone(), count: f.count }).collect()
    }
    async fn duration_p50_ms(&self) -> f64 {
        self.0.duration_p50_ms
    }
    async fn duration_p99_ms(&self) -> f64 {
        self.0.duration_p99_ms
    }
    async fn fuel_p99(&self) -> u64 {
        self.0.fuel_p99
    }
}

#[derive(SimpleObject)]
pub struct PluginFailureCount {
    kind: String,
    count: u64,
}

#[derive(SimpleObject)]
pub struct PluginSetting {
    name: String,
    value: String,
}

#[derive(InputObject)]
pub struct PluginSettingInput {
    name: String,
    value: String,
}

fn settings_pb(settings: Vec<PluginSettingInput>) -> Vec<pb::Setting> {
    settings.into_iter().map(|s| pb::Setting { name: s.name, value: s.value }).collect()
}

/// A line of the sample cart of a dry run.
#[derive(InputObject)]
pub struct PreviewLineInput {
    product_id: ID,
    quantity: i32,
    unit_price: MoneyInput,
    /// What earlier plugins took off the line's total, in minor units of
    /// `unitPrice.currency`.
    #[graphql(default_with = "Some(0)")]
    discount: Option<i64>,
}

/// What a dry run did: the plugin's answer, its cost and its log.
pub struct PluginPreview {
    result: pb::PreviewResult,
    /// The sample lines' currencies, by index: an adjustment's money is in
    /// its line's.
    currencies: Vec<String>,
}

impl PluginPreview {
    fn currency_of(&self, line: u32) -> String {
        let line = line as usize;
        self.currencies
            .get(line)
            .or_else(|| self.result.lines.get(line).and_then(|l| l.unit_price.as_ref()).map(|m| &m.currency))
            .cloned()
            .unwrap_or_default()
    }
}

fn money_in(amount: i64, currency: &str) -> Money {
    types::Money { amount, currency: currency.to_string() }.into()
}

#[Object]
impl PluginPreview {
    /// Why the call failed (`trap`, `fuel`, `memory`, `time`,
    /// `invalid_output`, `input_too_large`); `null` when it succeeded.
    async fn failure(&self) -> Option<&str> {
        Some(self.result.failure.as_str()).filter(|f| !f.is_empty())
    }
    /// The failure's detail.
    async fn error(&self) -> Option<&str> {
        Some(self.result.error.as_str()).filter(|e| !e.is_empty())
    }
    /// A pricing plugin's answer, in order.
    async fn adjustments(&self) -> Vec<PluginAdjustment> {
        self.result
            .adjustments
            .iter()
            .map(|a| {
                let currency = self.currency_of(a.line);
                let (unit_price, discount) = match a.change {
                    Some(pb::adjustment::Change::UnitPrice(p)) => (Some(money_in(p, &currency)), None),
                    Some(pb::adjustment::Change::Discount(d)) => (None, Some(money_in(d, &currency))),
                    None => (None, None),
                };
                PluginAdjustment { line: a.line, unit_price, discount, message: a.message.clone() }
            })
            .collect()
    }
    /// A validation plugin's answer: none means the cart is accepted.
    async fn violations(&self) -> Vec<PluginViolation> {
        self.result
            .violations
            .iter()
            .map(|v| PluginViolation { code: v.code.clone(), message: v.message.clone(), target: v.target.clone() })
            .collect()
    }
    /// The sample cart as the pricing plugin priced it.
    async fn lines(&self) -> Vec<PreviewPricedLine> {
        self.result
            .lines
            .iter()
            .map(|l| {
                let unit_price: Money = l.unit_price.clone().unwrap_or_default().into();
                PreviewPricedLine {
                    product_id: ID(l.product_id.clone()),
                    quantity: l.quantity,
                    discount: money_in(l.discount, &unit_price.currency),
                    unit_price,
                    line_total: l.line_total.clone().unwrap_or_default().into(),
                }
            })
            .collect()
    }
    async fn fuel_used(&self) -> u64 {
        self.result.fuel_used
    }
    async fn peak_memory_bytes(&self) -> u64 {
        self.result.peak_memory_bytes
    }
    async fn duration_us(&self) -> u64 {
        self.result.duration_us
    }
    /// What the plugin logged (the first kilobyte).
    async fn logs(&self) -> &str {
        &self.result.logs
    }
    async fn logs_truncated(&self) -> bool {
        self.result.logs_truncated
    }
    /// The version that ran.
    async fn version(&self) -> &str {
        &self.result.version
    }
}

/// One change a pricing plugin made, in the line's currency.
#[derive(SimpleObject)]
pub struct PluginAdjustment {
    /// Index of the line in the sample cart.
    line: u32,
    /// The new unit price, if that is the change.
    unit_price: Option<Money>,
    /// The amount taken off the line's total, if that is the change.
    discount: Option<Money>,
    message: String,
}

#[derive(SimpleObject)]
pub struct PluginViolation {
    code: String,
    message: String,
    /// A path into the sample cart (`lines[2].quantity`), or "".
    target: String,
}

#[derive(SimpleObject)]
pub struct PreviewPricedLine {
    product_id: ID,
    quantity: i64,
    unit_price: Money,
    discount: Money,
    line_total: Money,
}

#[derive(SimpleObject, Default)]
pub struct PluginPayload {
    plugin: Option<Plugin>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Default)]
pub struct PluginPreviewPayload {
    preview: Option<PluginPreview>,
    user_errors: Vec<UserError>,
}

/// The GraphQL input path of a service field: the plugin reference's
/// fields are arguments, `wasm` is `file`, lists are indexed
/// (`settings[1].name` → `["settings", "1", "name"]`), names camelCased.
/// `id` (a `NOT_FOUND` of the plugin or the version) names no field.
pub(crate) fn input_path(field: &str) -> Vec<String> {
    let field = field.strip_prefix("plugin.").unwrap_or(field);
    if field.is_empty() || field == "id" {
        return Vec::new();
    }
    field
        .split(['.', '[', ']'])
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "wasm" => "file".to_string(),
            s => camel(s),
        })
        .collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The argument a refusal without a field is about.
fn field_of(code: &str) -> Option<Vec<String>> {
    match code {
        "TOO_LARGE" | "INVALID_COMPONENT" | "INCOMPATIBLE_COMPONENT" => Some(vec!["file".into()]),
        "WRONG_KIND" => Some(vec!["name".into()]),
        _ => None,
    }
}

/// A failed plugin call as payload `userErrors`, or a top-level error.
///
/// As [`errors::from_status`], and also: an `INVALID_ARGUMENT` whose only
/// detail is a reason (`TOO_LARGE`, `INVALID_COMPONENT`,
/// `INCOMPATIBLE_COMPONENT`, `WRONG_KIND`: the service may send them as an
/// `ErrorInfo` or as a field violation) is a userError with that code, on
/// the argument it is about.
pub(crate) fn user_errors(status: &tonic::Status) -> Result<Vec<UserError>> {
    use tonic::Code as G;
    if !matches!(
        status.code(),
        G::InvalidArgument | G::NotFound | G::FailedPrecondition | G::AlreadyExists | G::Aborted
    ) {
        return Err(errors::top_level(status));
    }
    let reason = status.get_details_error_info().map(|i| i.reason).filter(|r| !r.is_empty());
    let violations = status.get_details_bad_request().map(|b| b.field_violations).unwrap_or_default();
    if !violations.is_empty() {
        return Ok(violations
            .into_iter()
            .map(|v| {
                let code =
                    if v.reason.is_empty() { reason.clone().unwrap_or_else(|| "INVALID".into()) } else { v.reason };
                let field = Some(input_path(&v.field)).filter(|p| !p.is_empty()).or_else(|| field_of(&code));
                let message = if v.description.is_empty() { status.message().to_string() } else { v.description };
                UserError { field, code, message }
            })
            .collect());
    }
    let code = match (status.code(), reason) {
        (_, Some(reason)) => reason,
        (G::NotFound, None) => "NOT_FOUND".into(),
        // No reason and no field: not something the caller can act on.
        (G::InvalidArgument, None) => return Err(errors::top_level(status)),
        (_, None) => "CONFLICT".into(),
    };
    Ok(vec![UserError { field: field_of(&code), code, message: status.message().to_string() }])
}

fn plugin_payload(result: std::result::Result<tonic::Response<pb::Plugin>, tonic::Status>) -> Result<PluginPayload> {
    match result {
        Ok(r) => Ok(PluginPayload { plugin: Some(Plugin(r.into_inner())), user_errors: vec![] }),
        Err(status) => Ok(PluginPayload { plugin: None, user_errors: user_errors(&status)? }),
    }
}

fn plugin_ref(name: String, merchant_id: Option<ID>) -> Option<pb::PluginRef> {
    Some(pb::PluginRef { merchant_id: merchant_id.map(|id| id.0).unwrap_or_default(), name })
}

#[derive(Default)]
pub struct PluginQuery;

#[Object]
impl PluginQuery {
    /// The caller's plugins (a merchant), or `merchantId`'s (admins), by
    /// kind and position.
    async fn plugins(&self, ctx: &Context<'_>, merchant_id: Option<ID>) -> Result<Vec<Plugin>> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::ListPluginsRequest { merchant_id: merchant_id.map(|id| id.0).unwrap_or_default() };
        let response = clients
            .plugin
            .clone()
            .list_plugins(clients.request(message, request))
            .await
            .map_err(|s| errors::top_level(&s))?;
        Ok(response.into_inner().plugins.into_iter().map(Plugin).collect())
    }

    /// A plugin of the caller's (or of `merchantId`'s, for admins); `null`
    /// when there is none.
    async fn plugin(&self, ctx: &Context<'_>, name: String, merchant_id: Option<ID>) -> Result<Option<Plugin>> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = plugin_ref(name, merchant_id).unwrap_or_default();
        match clients.plugin.clone().get_plugin(clients.request(message, request)).await {
            Ok(r) => Ok(Some(Plugin(r.into_inner()))),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(errors::top_level(&status)),
        }
    }
}

#[derive(Default)]
pub struct PluginMutation;

/// Arguments of a dry run, shared by both kinds.
struct Preview {
    name: String,
    version: Option<String>,
    lines: Vec<PreviewLineInput>,
    step: Option<CheckoutStep>,
    settings: Option<Vec<PluginSettingInput>>,
    merchant_id: Option<ID>,
}

async fn preview(ctx: &Context<'_>, kind: PluginKind, args: Preview) -> Result<PluginPreviewPayload> {
    let request = request_context(ctx)?;
    request.caller()?;
    // Each one runs a component.
    rate_limit::check(ctx, Class::Plugin)?;
    let clients = clients(ctx)?;
    let currencies = args.lines.iter().map(|l| l.unit_price.currency.clone()).collect();
    let message = pb::PreviewPluginRequest {
        plugin: plugin_ref(args.name, args.merchant_id),
        version: args.version.unwrap_or_default(),
        step: args.step.unwrap_or(CheckoutStep::Cart).to_pb() as i32,
        lines: args
            .lines
            .into_iter()
            .map(|l| pb::PreviewLine {
                product_id: l.product_id.0,
                quantity: l.quantity.into(),
                unit_price: Some(l.unit_price.into()),
                discount: l.discount.unwrap_or_default(),
            })
            .collect(),
        override_settings: args.settings.is_some(),
        settings: settings_pb(args.settings.unwrap_or_default()),
        kind: kind.to_pb() as i32,
    };
    match clients.plugin.clone().preview_plugin(clients.request(message, request)).await {
        Ok(r) => Ok(PluginPreviewPayload {
            preview: Some(PluginPreview { result: r.into_inner(), currencies }),
            user_errors: vec![],
        }),
        Err(status) => Ok(PluginPreviewPayload { preview: None, user_errors: user_errors(&status)? }),
    }
}

/// The bytes of an upload. A file can only come in a multipart request,
/// which the HTTP layer reads; anything else naming one is refused here
/// rather than reaching async-graphql's lookup, which would panic on it.
fn upload_bytes(ctx: &Context<'_>, file: Upload) -> Result<Vec<u8>> {
    let not_a_file =
        || api_error(Code::BadUserInput, "`file` must be a file part of a multipart request (see docs/graphql.md)");
    if file.0 >= ctx.query_env.uploads.len() {
        return Err(not_a_file());
    }
    let value = file.value(ctx).map_err(|_| not_a_file())?;
    let mut bytes = Vec::with_capacity(value.size().unwrap_or_default() as usize);
    value.into_read().read_to_end(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "reading an upload failed");
        api_error(Code::InternalServerError, "internal error")
    })?;
    Ok(bytes)
}

#[Object]
impl PluginMutation {
    /// Stores a new version of a plugin (created on its first upload) and
    /// activates it if asked. Send it as a GraphQL multipart request
    /// (`file` is the part); the version is the component's SHA-256.
    async fn upload_plugin(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        kind: PluginKind,
        name: String,
        #[graphql(default_with = "Some(false)")] activate: Option<bool>,
        merchant_id: Option<ID>,
    ) -> Result<PluginPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let wasm = upload_bytes(ctx, file)?;
        let message = pb::UploadPluginRequest {
            plugin: plugin_ref(name, merchant_id),
            kind: kind.to_pb() as i32,
            wasm,
            activate: activate.unwrap_or(false),
        };
        plugin_payload(clients.plugin.clone().upload_plugin(clients.upload_request(message, request)).await)
    }

    /// Makes a stored version (its SHA-256, or a unique prefix of at least
    /// 8 hex digits) the live one, and enables the plugin.
    async fn activate_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: String,
        merchant_id: Option<ID>,
    ) -> Result<PluginPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::ActivatePluginRequest { plugin: plugin_ref(name, merchant_id), version };
        plugin_payload(clients.plugin.clone().activate_plugin(clients.request(message, request)).await)
    }

    /// Goes back to the version that was live before the current one
    /// (`NO_PREVIOUS_VERSION` when there is none).
    async fn rollback_plugin(&self, ctx: &Context<'_>, name: String, merchant_id: Option<ID>) -> Result<PluginPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = plugin_ref(name, merchant_id).unwrap_or_default();
        plugin_payload(clients.plugin.clone().rollback_plugin(clients.request(message, request)).await)
    }

    /// Stops running the plugin; its versions stay, and activating one
    /// enables it again.
    async fn disable_plugin(&self, ctx: &Context<'_>, name: String, merchant_id: Option<ID>) -> Result<PluginPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = plugin_ref(name, merchant_id).unwrap_or_default();
        plugin_payload(clients.plugin.clone().disable_plugin(clients.request(message, request)).await)
    }

    /// Changes what is given: `settings` replace the plugin's settings
    /// (an empty list removes them all); `onFailure` and `position` are
    /// unchanged when left out.
    async fn configure_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        merchant_id: Option<ID>,
        settings: Option<Vec<PluginSettingInput>>,
        on_failure: Option<PluginFailureMode>,
        position: Option<i32>,
    ) -> Result<PluginPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::ConfigurePluginRequest {
            plugin: plugin_ref(name, merchant_id),
            replace_settings: settings.is_some(),
            settings: settings_pb(settings.unwrap_or_default()),
            on_failure: on_failure.map_or(pb::FailureMode::Unspecified, PluginFailureMode::to_pb) as i32,
            position,
        };
        plugin_payload(clients.plugin.clone().configure_plugin(clients.request(message, request)).await)
    }

    /// Runs a pricing plugin's `version` (default: the live one) on a
    /// sample cart, with `settings` instead of its own if given. Activates
    /// nothing and records no statistics; a validation plugin is
    /// `WRONG_KIND`.
    #[allow(clippy::too_many_arguments)]
    async fn preview_pricing(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: Option<String>,
        lines: Vec<PreviewLineInput>,
        #[graphql(default_with = "Some(CheckoutStep::Cart)")] step: Option<CheckoutStep>,
        settings: Option<Vec<PluginSettingInput>>,
        merchant_id: Option<ID>,
    ) -> Result<PluginPreviewPayload> {
        preview(ctx, PluginKind::Pricing, Preview { name, version, lines, step, settings, merchant_id }).await
    }

    /// As `previewPricing`, for a validation plugin.
    #[allow(clippy::too_many_arguments)]
    async fn preview_validation(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: Option<String>,
        lines: Vec<PreviewLineInput>,
        #[graphql(default_with = "Some(CheckoutStep::Cart)")] step: Option<CheckoutStep>,
        settings: Option<Vec<PluginSettingInput>>,
        merchant_id: Option<ID>,
    ) -> Result<PluginPreviewPayload> {
        preview(ctx, PluginKind::Validation, Preview { name, version, lines, step, settings, merchant_id }).await
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

    use super::*;

    #[test]
    fn service_fields_become_argument_paths() {
        assert_eq!(input_path("plugin.name"), ["name"]);
        assert_eq!(input_path("name"), ["name"]);
        assert_eq!(input_path("wasm"), ["file"]);
        assert_eq!(input_path("settings[1].name"), ["settings", "1", "name"]);
        assert_eq!(input_path("lines.0.unit_price.currency"), ["lines", "0", "unitPrice", "currency"]);
        assert_eq!(input_path("on_failure"), ["onFailure"]);
        assert!(input_path("id").is_empty());
        assert!(input_path("").is_empty());
    }

    #[test]
    fn refusals_become_user_errors_on_their_argument() {
        let with_reason = |code: tonic::Code, reason: &str| {
            tonic::Status::with_error_details(
                code,
                "refused",
                ErrorDetails::with_error_info(reason, "polyscale", std::collections::HashMap::new()),
            )
        };
        for reason in ["TOO_LARGE", "INVALID_COMPONENT", "INCOMPATIBLE_COMPONENT"] {
            let errors = user_errors(&with_reason(tonic::Code::InvalidArgument, reason)).unwrap();
            assert_eq!(
                errors,
                [UserError { field: Some(vec!["file".into()]), code: reason.into(), message: "refused".into() }]
            );
        }
        let errors = user_errors(&with_reason(tonic::Code::InvalidArgument, "WRONG_KIND")).unwrap();
        assert_eq!((errors[0].code.as_str(), errors[0].field.clone()), ("WRONG_KIND", Some(vec!["name".into()])));
        let errors = user_errors(&with_reason(tonic::Code::FailedPrecondition, "NO_PREVIOUS_VERSION")).unwrap();
        assert_eq!((errors[0].code.as_str(), errors[0].field.clone()), ("NO_PREVIOUS_VERSION", None));

        // Field violations: one userError each, the reason as the code.
        let mut violation = FieldViolation::new("plugin.name", "names are lower-case letters, digits and dashes");
        violation.reason = "INVALID_NAME".into();
        let status = tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            "invalid input",
            ErrorDetails::with_bad_request(vec![violation]),
        );
        let errors = user_errors(&status).unwrap();
        assert_eq!(errors[0].code, "INVALID_NAME");
        assert_eq!(errors[0].field, Some(vec!["name".to_string()]));

        let errors = user_errors(&tonic::Status::not_found("no such plugin")).unwrap();
        assert_eq!((errors[0].code.as_str(), errors[0].field.clone()), ("NOT_FOUND", None));

        // Not the caller's input: top-level errors with the usual codes.
        for (status, code) in [
            (tonic::Status::unauthenticated("sign in"), "UNAUTHENTICATED"),
            (tonic::Status::permission_denied("merchants only"), "FORBIDDEN"),
            (tonic::Status::unavailable("down"), "SERVICE_UNAVAILABLE"),
            (tonic::Status::invalid_argument("no detail"), "BAD_USER_INPUT"),
        ] {
            let error = user_errors(&status).unwrap_err();
            let extensions = error.extensions.expect("a code");
            assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from(code)), "{status:?}");
        }
    }

    #[test]
    fn kinds_by_name() {
        assert_eq!(PluginKind::parse("pricing"), Some(PluginKind::Pricing));
        assert_eq!(PluginKind::parse("validation"), Some(PluginKind::Validation));
        assert_eq!(PluginKind::parse("PRICING"), None);
        assert_eq!(PluginKind::name_of(pb::PluginKind::Validation as i32), "validation");
    }
}
