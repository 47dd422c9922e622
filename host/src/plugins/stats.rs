//! Per-plugin call statistics, for the merchant (GraphQL `plugin { stats }`)
//! and for Prometheus: calls, failures by kind, duration p50/p99 and fuel
//! p99. Held by this process since it started (each replica its own).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use hdrhistogram::Histogram;

/// Why a plugin call produced no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    Trap,
    Fuel,
    Memory,
    Time,
    InvalidOutput,
    /// The input was over the input cap; the plugin was not called.
    InputTooLarge,
    /// The plugin could not be run (loading failed, too many calls at once).
    Unavailable,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
            FailureKind::Time => "time",
            FailureKind::InvalidOutput => "invalid_output",
            FailureKind::InputTooLarge => "input_too_large",
            FailureKind::Unavailable => "unavailable",
        }
    }
}

/// A plugin's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub failures: BTreeMap<&'static str, u64>,
    pub duration_p50: Duration,
    pub duration_p99: Duration,
    pub fuel_p99: u64,
}

struct PluginFigures {
    calls: u64,
    failures: BTreeMap<&'static str, u64>,
    /// Microseconds.
    durations: Histogram<u64>,
    fuel: Histogram<u64>,
}

impl PluginFigures {
    fn new() -> Self {
        Self {
            calls: 0,
            failures: BTreeMap::new(),
            // Three significant digits; values auto-resize.
            durations: Histogram::new(3).expect("a valid histogram"),
            fuel: Histogram::new(3).expect("a valid histogram"),
        }
    }
}

#[derive(Default)]
pub struct PluginStats {
    by_plugin: DashMap<(String, String), Mutex<PluginFigures>>,
}

impl PluginStats {
    /// Records one call of `merchant`'s `plugin`.
    pub fn record(
        &self,
        merchant: &str,
        plugin: &str,
        elapsed: Duration,
        fuel: Option<u64>,
        failure: Option<FailureKind>,
    ) {
        let entry = self
            .by_plugin
            .entry((merchant.to_string(), plugin.to_string()))
            .or_insert_with(|| Mutex::new(PluginFigures::new()));
        let mut figures = entry.lock().unwrap_or_else(|p| p.into_inner());
        figures.calls += 1;
        // `record` grows the (auto-resizing) histogram; `saturating_record`
        // would clamp to its first range.
        let _ = figures.durations.record(elapsed.as_micros().min(u64::MAX as u128) as u64);
        if let Some(fuel) = fuel {
            let _ = figures.fuel.record(fuel);
        }
        if let Some(kind) = failure {
            *figures.failures.entry(kind.as_str()).or_insert(0) += 1;
        }
        drop(figures);
        let outcome = failure.map_or("ok", FailureKind::as_str);
        let labels = [("merchant", merchant.to_string()), ("plugin", plugin.to_string())];
        metrics::counter!("polyscale_plugin_calls_total", "merchant" => labels[0].1.clone(),
            "plugin" => labels[1].1.clone(), "outcome" => outcome)
        .increment(1);
        metrics::histogram!("polyscale_plugin_call_seconds", &labels).record(elapsed.as_secs_f64());
        if let Some(fuel) = fuel {
            metrics::histogram!("polyscale_plugin_fuel", &labels).record(fuel as f64);
        }
    }

    pub fn snapshot(&self, merchant: &str, plugin: &str) -> StatsSnapshot {
        let Some(entry) = self.by_plugin.get(&(merchant.to_string(), plugin.to_string())) else {
            return StatsSnapshot::default();
        };
        let figures = entry.lock().unwrap_or_else(|p| p.into_inner());
        StatsSnapshot {
            calls: figures.calls,
            failures: figures.failures.clone(),
            duration_p50: Duration::from_micros(figures.durations.value_at_quantile(0.5)),
            duration_p99: Duration::from_micros(figures.durations.value_at_quantile(0.99)),
            fuel_p99: figures.fuel.value_at_quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_by_kind_and_reports_quantiles() {
        let stats = PluginStats::default();
        for i in 1..=100 {
            stats.record("m", "p", Duration::from_micros(i * 10), Some(i * 1000), None);
        }
        stats.record("m", "p", Duration::from_millis(5), None, Some(FailureKind::Fuel));
        stats.record("m", "p", Duration::from_millis(5), None, Some(FailureKind::Fuel));
        stats.record("m", "p", Duration::from_millis(5), None, Some(FailureKind::Trap));
        let s = stats.snapshot("m", "p");
        assert_eq!(s.calls, 103);
        assert_eq!(s.failures.get("fuel"), Some(&2));
        assert_eq!(s.failures.get("trap"), Some(&1));
        let p50 = s.duration_p50.as_micros();
        assert!((490..=530).contains(&p50), "p50 {p50}");
        assert!((98_000..=100_100).contains(&s.fuel_p99), "fuel p99 {}", s.fuel_p99);
        assert_eq!(stats.snapshot("m", "other"), StatsSnapshot::default());
    }
}
