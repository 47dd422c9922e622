//! Running plugins: one call under the plugin limits ([`PluginHost::run`]),
//! the checks on what a plugin answers, and the `extensions` capability
//! (a merchant's pricing plugins in their order, each seeing the lines as
//! priced by the ones before, then the validation plugins).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::PluginHost;
use super::stats::FailureKind;
use super::store::{FailureMode, PluginKind, PluginRecord};
use super::worlds::LogSink;
use crate::bindings::plugin::types::{Adjustment, Cart, Change, Line, Money, Setting, Step as PluginStep, Violation};
use crate::bindings::types::Money as CommerceMoney;
use crate::call::CallInfo;
use crate::capabilities::extensions::{
    ExtensionIssue, ExtensionLine, Extensions, ExtensionsFuture, LinePricing, Step, unchanged,
};
use crate::registry::{DeployError, Deployable, Slots};
use crate::runtime::{BoxFuture, CallError, WorldStore};

/// Why a plugin call gave no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    fn from_call(e: &CallError) -> Self {
        let kind = match e {
            CallError::Timeout { .. } => FailureKind::Time,
            CallError::MemoryExhausted(_) => FailureKind::Memory,
            CallError::FuelExhausted => FailureKind::Fuel,
            CallError::Trapped(_) => FailureKind::Trap,
            CallError::NoActiveVersion { .. } | CallError::Overloaded(_) | CallError::Unavailable(_) => {
                FailureKind::Unavailable
            }
        };
        let message = match e {
            // The first line of a trap says what happened; the backtrace is
            // for the host's logs.
            CallError::Trapped(m) => format!("the plugin trapped: {}", m.lines().next().unwrap_or_default()),
            other => other.to_string(),
        };
        Self::new(kind, message)
    }
}

/// One plugin call, as a dry run reports it.
#[derive(Debug)]
pub struct RunReport<T> {
    pub outcome: Result<T, Failure>,
    pub version: String,
    pub fuel_used: u64,
    pub peak_memory_bytes: u64,
    pub duration: Duration,
    pub log: String,
    pub log_truncated: bool,
}

/// A pricing plugin's checked answer: its adjustments, the lines as it
/// priced them, and each line's new notes.
pub type Priced = (Vec<Adjustment>, Vec<Line>, Vec<Vec<String>>);

/// What a plugin call hands back from inside the store.
struct Inside<T> {
    result: Result<T, wasmtime::Error>,
    fuel_left: u64,
    peak_memory_bytes: usize,
    log: (String, bool),
}

/// Gives a call's closure the signature the registry wants (a closure's
/// own is inferred too narrow for the higher-ranked lifetime).
fn bind<W, T, F>(f: F) -> F
where
    W: Deployable,
    F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
{
    f
}

/// The input's size as the cap counts it: its strings plus 32 bytes per
/// line and setting.
pub fn input_size(cart: &Cart) -> usize {
    cart.merchant_id.len()
        + cart.lines.iter().map(|l| l.product_id.len() + l.unit_price.currency.len() + 32).sum::<usize>()
        + cart.settings.iter().map(|s| s.name.len() + s.value.len() + 32).sum::<usize>()
}

fn output_size_adjustments(a: &[Adjustment]) -> usize {
    a.iter().map(|a| a.message.len() + 16).sum()
}

fn output_size_violations(v: &[Violation]) -> usize {
    v.iter().map(|v| v.code.len() + v.message.len() + v.target.len() + 16).sum()
}

/// Longest adjustment message or violation message kept.
const MAX_MESSAGE_CHARS: usize = 200;

/// Printable, one line, at most [`MAX_MESSAGE_CHARS`] characters.
fn tidy_message(message: &str) -> String {
    message.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE_CHARS).collect()
}

/// Applies a pricing plugin's adjustments to `lines`, or says why the
/// answer is refused (every adjustment or none). Returns the new lines and
/// each line's new notes.
pub fn apply_adjustments(
    lines: &[Line],
    adjustments: &[Adjustment],
    max_output_bytes: usize,
) -> Result<(Vec<Line>, Vec<Vec<String>>), String> {
    let size = output_size_adjustments(adjustments);
    if size > max_output_bytes {
        return Err(format!("the output is {size} bytes; the limit is {max_output_bytes}"));
    }
    let mut out = lines.to_vec();
    let mut notes = vec![Vec::new(); lines.len()];
    for (i, a) in adjustments.iter().enumerate() {
        let Some(line) = out.get_mut(a.line as usize) else {
            return Err(format!("adjustment {i} targets line {}; the cart has {} lines", a.line, lines.len()));
        };
        match a.change {
            Change::UnitPrice(price) if price < 0 => {
                return Err(format!("adjustment {i} sets a negative unit price ({price})"));
            }
            Change::UnitPrice(price) => line.unit_price.amount = price,
            Change::Discount(amount) if amount < 0 => {
                return Err(format!("adjustment {i} is a negative discount ({amount})"));
            }
            Change::Discount(amount) => {
                line.discount = line.discount.checked_add(amount).ok_or("a discount overflows")?;
            }
        }
        let message = tidy_message(&a.message);
        if !message.is_empty() {
            notes[a.line as usize].push(message);
        }
    }
    for (i, line) in out.iter().enumerate() {
        let total = line.unit_price.amount.checked_mul(line.quantity).ok_or("a line total overflows")?;
        if line.discount > total {
            return Err(format!("line {i}'s discounts ({}) exceed its total ({total})", line.discount));
        }
    }
    Ok((out, notes))
}

/// Checks a validation plugin's violations, or says why the answer is
/// refused.
pub fn check_violations(violations: &[Violation], lines: usize, max_output_bytes: usize) -> Result<(), String> {
    let size = output_size_violations(violations);
    if size > max_output_bytes {
        return Err(format!("the output is {size} bytes; the limit is {max_output_bytes}"));
    }
    for (i, v) in violations.iter().enumerate() {
        let code_ok = v.code.len() <= 64
            && v.code.starts_with(|c: char| c.is_ascii_uppercase())
            && v.code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !code_ok {
            return Err(format!("violation {i} has code {:?}; codes are UPPER_SNAKE_CASE, at most 64", v.code));
        }
        if let Some(index) = target_line(&v.target) {
            match index {
                Some(index) if index < lines => {}
                _ => return Err(format!("violation {i} targets {:?}; the cart has {lines} lines", v.target)),
            }
        }
    }
    Ok(())
}

/// For a target `lines[N]…`: `Some(Some(N))` (`Some(None)` if N is not a
/// number); None for other targets.
fn target_line(target: &str) -> Option<Option<usize>> {
    let rest = target.strip_prefix("lines[")?;
    Some(rest.split_once(']').and_then(|(n, _)| n.parse().ok()))
}

/// A violation's target with the merchant's line index replaced by the
/// cart's.
fn cart_target(target: &str, indices: &[usize]) -> String {
    match target_line(target) {
        Some(Some(local)) => {
            let rest = target.split_once(']').map_or("", |(_, rest)| rest);
            format!("lines[{}]{}", indices[local], rest)
        }
        _ => target.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE_CHARS).collect(),
    }
}

impl PluginHost {
    /// Fuel for a call on `lines` lines: the base budget, scaled beyond
    /// [`super::PluginLimits::lines_in_base_fuel`] lines.
    pub fn fuel_for(&self, lines: usize) -> u64 {
        let limits = &self.config.limits;
        let extra = lines.saturating_sub(limits.lines_in_base_fuel) as u64;
        limits.fuel.saturating_add(extra.saturating_mul(limits.fuel / limits.lines_in_base_fuel.max(1) as u64))
    }

    /// Runs `owner`'s plugin (its `version`, or the active one) under the
    /// plugin limits; the deadline is the shorter of the plugin limit and
    /// what `call` has left.
    pub(crate) async fn run<W, T, F>(
        &self,
        slots: &Slots<W>,
        owner: &str,
        version: Option<&str>,
        cart: &Cart,
        call: &CallInfo,
        f: F,
    ) -> RunReport<T>
    where
        W: Deployable<Caps = super::worlds::PluginCaps>,
        T: Send + 'static,
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>, &'a Cart) -> BoxFuture<'a, wasmtime::Result<T>>
            + Send
            + 'static,
    {
        let started = Instant::now();
        let failed = |failure: Failure, version: String| RunReport {
            outcome: Err(failure),
            version,
            fuel_used: 0,
            peak_memory_bytes: 0,
            duration: started.elapsed(),
            log: String::new(),
            log_truncated: false,
        };
        let size = input_size(cart);
        if size > self.config.limits.max_input_bytes {
            let message = format!("the input is {size} bytes; the limit is {}", self.config.limits.max_input_bytes);
            return failed(Failure::new(FailureKind::InputTooLarge, message), String::new());
        }
        let budget = self.fuel_for(cart.lines.len());
        let base = self.config.limits.fuel;
        let mut timeout = self.config.limits.timeout;
        if let Some(deadline) = call.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        let info = CallInfo::new(call.request_id.clone(), None);
        let cart = cart.clone();
        let body = bind::<W, _, _>(move |e, s| {
            Box::pin(async move {
                // Instantiation ran on the base budget; the call gets the rest
                // of the cart's budget.
                let spent = base.saturating_sub(s.get_fuel()?);
                s.set_fuel(budget.saturating_sub(spent))?;
                let result = f(e, s, &cart).await;
                let log: LogSink = s.data().caps.log.clone();
                Ok(Inside {
                    result,
                    fuel_left: s.get_fuel().unwrap_or(0),
                    peak_memory_bytes: s.data().peak_memory_bytes(),
                    log: log.take(),
                })
            })
        });
        let served = match version {
            Some(version) => slots.call_version(owner, version, info, Some(timeout), body).await.map_err(|e| match e {
                DeployError::Failed(call) => Failure::from_call(&call),
                DeployError::UnknownVersion { .. } => Failure::new(FailureKind::Unavailable, e.to_string()),
                other => Failure::new(FailureKind::Unavailable, other.to_string()),
            }),
            None => slots.call(owner, info, Some(timeout), body).await.map_err(|e| Failure::from_call(&e)),
        };
        match served {
            Err(failure) => failed(failure, version.unwrap_or_default().to_string()),
            Ok(served) => {
                let inside = served.value;
                let outcome = inside.result.map_err(|e| Failure::from_call(&CallError::from_wasm(e, timeout)));
                RunReport {
                    outcome,
                    version: served.version,
                    fuel_used: budget.saturating_sub(inside.fuel_left),
                    peak_memory_bytes: inside.peak_memory_bytes as u64,
                    duration: started.elapsed(),
                    log: inside.log.0,
                    log_truncated: inside.log.1,
                }
            }
        }
    }

    /// Runs a pricing plugin and checks its answer: the lines as it priced
    /// them, and its notes per line.
    pub async fn price(
        &self,
        plugin: &PluginRecord,
        version: Option<&str>,
        cart: &Cart,
        call: &CallInfo,
    ) -> RunReport<Priced> {
        let report = self
            .run(&self.pricing, &plugin.owner(), version, cart, call, |e, s, cart| {
                Box::pin(async move { e.polyscale_plugin_pricer().call_price(s, cart).await })
            })
            .await;
        let max_output = self.config.limits.max_output_bytes;
        let RunReport { outcome, version, fuel_used, peak_memory_bytes, duration, log, log_truncated } = report;
        let outcome = outcome.and_then(|adjustments| {
            apply_adjustments(&cart.lines, &adjustments, max_output)
                .map(|(lines, notes)| (adjustments, lines, notes))
                .map_err(|why| Failure::new(FailureKind::InvalidOutput, why))
        });
        RunReport { outcome, version, fuel_used, peak_memory_bytes, duration, log, log_truncated }
    }

    /// Runs a validation plugin and checks its answer.
    pub async fn validate(
        &self,
        plugin: &PluginRecord,
        version: Option<&str>,
        cart: &Cart,
        call: &CallInfo,
    ) -> RunReport<Vec<Violation>> {
        let report = self
            .run(&self.validation, &plugin.owner(), version, cart, call, |e, s, cart| {
                Box::pin(async move { e.polyscale_plugin_validator().call_validate(s, cart).await })
            })
            .await;
        let max_output = self.config.limits.max_output_bytes;
        let lines = cart.lines.len();
        let outcome = report.outcome.and_then(|violations| {
            check_violations(&violations, lines, max_output)
                .map(|()| violations)
                .map_err(|why| Failure::new(FailureKind::InvalidOutput, why))
        });
        RunReport { outcome, ..report }
    }

    fn record<T>(&self, plugin: &PluginRecord, cart: &Cart, report: &RunReport<T>) {
        let failure = report.outcome.as_ref().err();
        let fuel = report.outcome.is_ok().then_some(report.fuel_used);
        self.stats.record(&plugin.merchant_id, &plugin.name, report.duration, fuel, failure.map(|f| f.kind));
        if let Some(failure) = failure {
            tracing::warn!(merchant = %plugin.merchant_id, plugin = %plugin.name, version = %report.version,
                kind = failure.kind.as_str(), error = %failure.message, "merchant plugin failed");
            self.keep_failed_input(plugin, cart, &report.version, failure);
        }
    }

    /// One merchant's part of a cart, through their plugins.
    async fn apply_merchant(
        &self,
        step: PluginStep,
        merchant_id: &str,
        indices: &[usize],
        all: &[ExtensionLine],
        call: &CallInfo,
        out: &mut crate::capabilities::extensions::ExtensionOutcome,
    ) {
        let plugins = match self.directory(merchant_id).await {
            Ok(plugins) => plugins,
            Err(e) => {
                tracing::error!(merchant = merchant_id, error = ?e, "the merchant's plugins cannot be read");
                out.issues.push(ExtensionIssue {
                    merchant_id: merchant_id.to_string(),
                    plugin: String::new(),
                    code: "PRICING_FAILED".into(),
                    message: "this merchant's prices cannot be computed now; retry later".into(),
                    target: String::new(),
                    blocking: true,
                });
                return;
            }
        };
        if plugins.is_empty() {
            return;
        }
        let mut lines: Vec<Line> = indices
            .iter()
            .map(|&i| Line {
                product_id: all[i].product_id.clone(),
                quantity: all[i].quantity,
                unit_price: Money { amount: all[i].unit_price.amount, currency: all[i].unit_price.currency.clone() },
                discount: 0,
            })
            .collect();
        let mut notes: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
        let cart = |lines: &[Line], plugin: &PluginRecord| Cart {
            step,
            merchant_id: merchant_id.to_string(),
            lines: lines.to_vec(),
            settings: plugin.settings.iter().map(|(n, v)| Setting { name: n.clone(), value: v.clone() }).collect(),
        };
        let failed = |plugin: &PluginRecord, code: &str, message: String| ExtensionIssue {
            merchant_id: merchant_id.to_string(),
            plugin: plugin.name.clone(),
            code: code.to_string(),
            message,
            target: String::new(),
            blocking: true,
        };
        for plugin in plugins.iter().filter(|p| p.kind == PluginKind::Pricing) {
            let input = cart(&lines, plugin);
            let report = self.price(plugin, None, &input, call).await;
            self.record(plugin, &input, &report);
            match report.outcome {
                Ok((_, priced, new_notes)) => {
                    lines = priced;
                    for (kept, new) in notes.iter_mut().zip(new_notes) {
                        kept.extend(new);
                    }
                }
                Err(_) if plugin.on_failure == FailureMode::Skip => {}
                Err(failure) => {
                    let message = format!(
                        "this merchant's pricing failed ({}); the cart cannot be checked out until it is fixed",
                        failure.kind.as_str()
                    );
                    out.issues.push(failed(plugin, "PRICING_FAILED", message));
                }
            }
        }
        for plugin in plugins.iter().filter(|p| p.kind == PluginKind::Validation) {
            let input = cart(&lines, plugin);
            let report = self.validate(plugin, None, &input, call).await;
            self.record(plugin, &input, &report);
            match report.outcome {
                Ok(violations) => out.issues.extend(violations.into_iter().map(|v| ExtensionIssue {
                    merchant_id: merchant_id.to_string(),
                    plugin: plugin.name.clone(),
                    code: v.code,
                    message: tidy_message(&v.message),
                    target: cart_target(&v.target, indices),
                    blocking: true,
                })),
                Err(_) if plugin.on_failure == FailureMode::Skip => {}
                Err(failure) => {
                    let message = format!(
                        "this merchant's cart checks failed ({}); the cart cannot be checked out until they are fixed",
                        failure.kind.as_str()
                    );
                    out.issues.push(failed(plugin, "VALIDATION_FAILED", message));
                }
            }
        }
        for ((line, line_notes), &i) in lines.into_iter().zip(notes).zip(indices) {
            out.lines[i] = LinePricing {
                unit_price: CommerceMoney { amount: line.unit_price.amount, currency: line.unit_price.currency },
                discount: line.discount,
                notes: line_notes,
            };
        }
    }
}

impl Extensions for PluginHost {
    fn apply<'a>(&'a self, step: Step, lines: Vec<ExtensionLine>, call: &'a CallInfo) -> ExtensionsFuture<'a> {
        Box::pin(async move {
            let mut out = unchanged(&lines);
            let step = match step {
                Step::Cart => PluginStep::Cart,
                Step::Checkout => PluginStep::Checkout,
            };
            // Each merchant's lines, merchants in the order they first appear.
            let mut merchants: BTreeMap<&str, (usize, Vec<usize>)> = BTreeMap::new();
            for (i, line) in lines.iter().enumerate() {
                let n = merchants.len();
                merchants.entry(line.merchant_id.as_str()).or_insert((n, Vec::new())).1.push(i);
            }
            let mut merchants: Vec<(&str, Vec<usize>)> = merchants.into_iter().map(|(m, (_, i))| (m, i)).collect();
            merchants.sort_by_key(|(_, indices)| indices[0]);
            for (merchant, indices) in merchants {
                self.apply_merchant(step, merchant, &indices, &lines, call, &mut out).await;
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(price: i64, quantity: i64) -> Line {
        Line {
            product_id: "p".into(),
            quantity,
            unit_price: Money { amount: price, currency: "EUR".into() },
            discount: 0,
        }
    }

    fn adjust(line: u32, change: Change) -> Adjustment {
        Adjustment { line, change, message: "m".into() }
    }

    #[test]
    fn adjustments_apply_in_order_and_collect_notes() {
        let lines = [line(1000, 2), line(500, 1)];
        let (out, notes) =
            apply_adjustments(&lines, &[adjust(0, Change::UnitPrice(900)), adjust(0, Change::Discount(100))], 1000)
                .unwrap();
        assert_eq!(out[0].unit_price.amount, 900);
        assert_eq!(out[0].discount, 100);
        assert_eq!(out[1], lines[1]);
        assert_eq!(notes, vec![vec!["m".to_string(), "m".to_string()], vec![]]);
    }

    #[test]
    fn refused_adjustments_name_the_rule() {
        let lines = [line(1000, 2)];
        let refused = |a: Adjustment| apply_adjustments(&lines, &[a], 1000).unwrap_err();
        assert!(refused(adjust(1, Change::Discount(1))).contains("targets line 1"));
        assert!(refused(adjust(0, Change::UnitPrice(-1))).contains("negative unit price"));
        assert!(refused(adjust(0, Change::Discount(-1))).contains("negative discount"));
        assert!(refused(adjust(0, Change::Discount(2001))).contains("exceed its total"));
        // A price cut below what earlier discounts took is refused too.
        let err =
            apply_adjustments(&lines, &[adjust(0, Change::Discount(1500)), adjust(0, Change::UnitPrice(500))], 1000)
                .unwrap_err();
        assert!(err.contains("exceed"), "{err}");
        let flood: Vec<Adjustment> = (0..100).map(|_| adjust(0, Change::Discount(0))).collect();
        assert!(apply_adjustments(&lines, &flood, 1000).unwrap_err().contains("the limit is 1000"));
    }

    #[test]
    fn violations_need_codes_and_real_lines() {
        let v = |code: &str, target: &str| Violation { code: code.into(), message: "x".into(), target: target.into() };
        assert!(check_violations(&[v("MAX_QUANTITY", "lines[1].quantity"), v("MIN", "")], 2, 1000).is_ok());
        assert!(check_violations(&[v("max", "")], 2, 1000).is_err());
        assert!(check_violations(&[v("A", "lines[2].quantity")], 2, 1000).is_err());
        assert!(check_violations(&[v("A", "lines[x]")], 2, 1000).is_err());
    }

    #[test]
    fn targets_move_to_the_cart_lines() {
        assert_eq!(cart_target("lines[1].quantity", &[3, 7]), "lines[7].quantity");
        assert_eq!(cart_target("", &[3]), "");
        assert_eq!(cart_target("settings.max", &[3]), "settings.max");
    }
}
