//! The invoker: one call to one component version, in a fresh store under
//! the limits of the slot's kind.

use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use super::{BoxFuture, CallError, CallLimits, CallState, EPOCH_TICK, Runtime, World, WorldStore};
use crate::call::CallInfo;

impl Runtime {
    /// Instantiates `pre` in a fresh store (capabilities from `shared`) and
    /// runs `f` on the instance. Bounded by `limits.timeout` (or `timeout`,
    /// if shorter): guest code yields to the scheduler at every epoch tick
    /// and traps at the deadline; an outer timeout stops a call stuck in
    /// host I/O. `info.component` and
    /// `info.version` label the call's logs and metrics.
    pub async fn invoke<W, T, F>(
        &self,
        pre: &W::Pre,
        shared: &W::Shared,
        info: CallInfo,
        limits: &CallLimits,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, CallError>
    where
        W: World,
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        let timeout = timeout.map_or(limits.timeout, |t| t.min(limits.timeout));
        let component = info.component.clone();
        let version = info.version.clone();
        let started = Instant::now();
        let deadline = started + timeout;
        let mut info = info;
        info.deadline = Some(deadline);
        let caps = W::caps(shared);
        let wasi = W::wasi(&info, &caps);
        let state = CallState::new(info, limits, wasi, caps);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        if self.config().fuel {
            // Without a budget a metered call could not even instantiate.
            let fuel = limits.fuel.unwrap_or(0);
            if let Err(e) = store.set_fuel(fuel) {
                return Err(CallError::Unavailable(format!("setting the fuel budget: {e}")));
            }
        }
        // Guest code runs until the next epoch tick, then hands its worker
        // thread back to tokio (so a busy loop never stalls other tasks) and
        // carries on for another tick; past its wall-clock deadline it traps.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });

        let _in_use = InstanceInUse::new();
        let work = async {
            let exports = W::instantiate(pre, &mut store).await?;
            f(&exports, &mut store).await
        };
        let outcome = match tokio::time::timeout(timeout + EPOCH_TICK * 2, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CallError::from_wasm(e, timeout)),
            Err(_) => Err(CallError::Timeout { timeout }),
        };
        let elapsed = started.elapsed();
        let label = match &outcome {
            Ok(_) => "ok",
            Err(CallError::Timeout { .. }) => "timeout",
            Err(CallError::MemoryExhausted(_)) => "memory_exhausted",
            Err(CallError::FuelExhausted) => "fuel_exhausted",
            Err(_) => "trap",
        };
        // The span of the call, made by the caller (`Slots::call_pre`).
        tracing::Span::current().record("outcome", label);
        metrics::histogram!(
            "polyscale_component_call_seconds",
            "component" => component.clone(),
            "version" => version.clone(),
            "outcome" => label
        )
        .record(elapsed.as_secs_f64());
        if self.config().fuel
            && let (Some(budget), Ok(left)) = (limits.fuel, store.get_fuel())
        {
            metrics::histogram!("polyscale_component_fuel", "component" => component.clone())
                .record(budget.saturating_sub(left) as f64);
        }
        if let Err(e) = &outcome {
            tracing::warn!(%component, %version, elapsed = ?elapsed, error = %e, "component call failed");
        }
        outcome
    }
}

/// `polyscale_component_instances`: component instances alive in this
/// process, counted down however the call ends (a dropped call included).
struct InstanceInUse;

impl InstanceInUse {
    fn new() -> Self {
        metrics::gauge!("polyscale_component_instances").increment(1.0);
        Self
    }
}

impl Drop for InstanceInUse {
    fn drop(&mut self) {
        metrics::gauge!("polyscale_component_instances").decrement(1.0);
    }
}
