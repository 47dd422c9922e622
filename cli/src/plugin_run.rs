//! `polyscale plugin run`: a plugin on a sample cart, on this machine,
//! exactly as the host runs it (the same engine settings, limits, checks
//! and deterministic WASI stub): the output, fuel, peak memory, time and
//! logs. Nothing leaves the machine; a throwaway component store in a
//! temporary directory holds the plugin for the run.
//!
//! The input is the plugin's `cart` as JSON, in the host's own encoding
//! (the one kept for failed calls, so a failed call's input replays as
//! is):
//!
//! ```json
//! { "step": "Cart", "merchant_id": "m1",
//!   "lines": [ { "product_id": "p1", "quantity": 2,
//!                "unit_price": { "amount": 1000, "currency": "USD" }, "discount": 0 } ],
//!   "settings": [ { "name": "percent", "value": "10" } ] }
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use polyscale_host::bindings::plugin::types::{Cart, Change};
use polyscale_host::call::CallInfo;
use polyscale_host::database::{ConnectOptions, Database};
use polyscale_host::plugins::runner::RunReport;
use polyscale_host::plugins::{PluginConfig, PluginHost, PluginKind, Preview};
use polyscale_host::registry::ComponentStore;
use serde_json::{Value, json};

/// Runs `wasm` (a pricing or validation plugin: tried in that order) on
/// `input`; returns the report as JSON.
pub async fn run(wasm: &[u8], input: &str, config: PluginConfig) -> Result<Value> {
    let cart: Cart = serde_json::from_str(input).context("the input is not a plugin cart (see docs/plugins.md)")?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("components.db").display());
    let db = Database::connect(&url, &ConnectOptions::default().host_store()).await?;
    let store = ComponentStore::open(db).await?;
    let host = PluginHost::start(config, store).await?;
    let merchant = if cart.merchant_id.is_empty() { "local".to_string() } else { cart.merchant_id.clone() };
    let mut refusals = Vec::new();
    for kind in [PluginKind::Pricing, PluginKind::Validation] {
        match host.upload(&merchant, "local", kind, wasm, "local", true).await {
            Ok(_) => {
                let call = CallInfo::new("local-run", None);
                let preview = host.preview(&merchant, "local", Some(kind), None, cart, &call).await?;
                return Ok(report(kind, preview));
            }
            Err(e) => refusals.push(format!("as a {} plugin: {e}", kind.as_str())),
        }
    }
    bail!("the host would refuse this component\n  {}", refusals.join("\n  "))
}

fn common<T>(kind: PluginKind, r: &RunReport<T>) -> Value {
    json!({
        "kind": kind.as_str(),
        "version": r.version,
        "failure": r.outcome.as_ref().err().map(|f| json!({ "kind": f.kind.as_str(), "message": f.message })),
        "fuel_used": r.fuel_used,
        "peak_memory_bytes": r.peak_memory_bytes,
        "duration_us": r.duration.as_micros() as u64,
        "logs": r.log,
        "logs_truncated": r.log_truncated,
    })
}

fn report(kind: PluginKind, preview: Preview) -> Value {
    match preview {
        Preview::Pricing(r) => {
            let mut out = common(kind, &r);
            if let Ok((adjustments, lines, _)) = &r.outcome {
                out["adjustments"] = adjustments
                    .iter()
                    .map(|a| {
                        let change = match a.change {
                            Change::UnitPrice(p) => json!({ "unit_price": p }),
                            Change::Discount(d) => json!({ "discount": d }),
                        };
                        json!({ "line": a.line, "change": change, "message": a.message })
                    })
                    .collect();
                out["lines"] = serde_json::to_value(lines).unwrap_or_default();
            }
            out
        }
        Preview::Validation(r) => {
            let mut out = common(kind, &r);
            if let Ok(violations) = &r.outcome {
                out["violations"] = serde_json::to_value(violations).unwrap_or_default();
            }
            out
        }
    }
}

/// The report for people.
pub fn human(report: &Value) -> String {
    let mut out = String::new();
    let field = |k: &str| report[k].clone();
    out.push_str(&format!(
        "{} plugin {}\n",
        field("kind").as_str().unwrap_or(""),
        &field("version").as_str().unwrap_or("")[..12.min(field("version").as_str().unwrap_or("").len())]
    ));
    match report["failure"].as_object() {
        Some(f) => out.push_str(&format!(
            "FAILED ({}): {}\n",
            f["kind"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        )),
        None => {
            if let Some(adjustments) = report["adjustments"].as_array() {
                out.push_str(&format!("{} adjustment(s)\n", adjustments.len()));
                for a in adjustments {
                    out.push_str(&format!("  line {}: {} {}\n", a["line"], a["change"], a["message"]));
                }
            }
            if let Some(violations) = report["violations"].as_array() {
                out.push_str(&format!("{} violation(s)\n", violations.len()));
                for v in violations {
                    out.push_str(&format!(
                        "  {} at {:?}: {}\n",
                        v["code"].as_str().unwrap_or(""),
                        v["target"].as_str().unwrap_or(""),
                        v["message"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    out.push_str(&format!(
        "fuel {}  memory {} bytes  time {} µs\n",
        report["fuel_used"], report["peak_memory_bytes"], report["duration_us"]
    ));
    let logs = report["logs"].as_str().unwrap_or("");
    if !logs.is_empty() {
        out.push_str("logs:\n");
        for line in logs.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        if report["logs_truncated"].as_bool() == Some(true) {
            out.push_str("  … (truncated)\n");
        }
    }
    out
}

/// Uploads a version through the gateway's `PUT /plugins/{name}`; returns
/// its JSON answer, or the gateway's error.
pub async fn upload(url: &str, token: &str, name: &str, kind: &str, activate: bool, wasm: Vec<u8>) -> Result<Value> {
    let endpoint = format!("{}/plugins/{name}?kind={kind}&activate={activate}", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .put(&endpoint)
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .with_context(|| format!("PUT {endpoint}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("the upload was refused ({status}): {body}");
    }
    Ok(body)
}

/// Reads a plugin file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
