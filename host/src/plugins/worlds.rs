//! The two plugin worlds, `pricing` and `validation`
//! (`polyscale:plugin@1.0.0`), as the runtime and the registry see them.
//!
//! A plugin may import `polyscale:plugin/log` and the WASI interfaces that
//! language runtimes import by default, answered by a deterministic stub:
//! no environment or arguments, no files (no preopened directory), stdin
//! empty, clocks fixed at zero, randomness from a fixed seed, stdout and
//! stderr into the call's log. Sockets, name lookup and HTTP are not
//! linked, so a component that imports them is refused at upload, with
//! the offending import named ([`Deployable::check`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::io::AsyncWrite;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasData, InstancePre, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock, WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiView};

use crate::bindings::plugin::log;
use crate::bindings::plugin::pricing::{Pricing, PricingPre};
use crate::bindings::plugin::validation::{Validation, ValidationPre};
use crate::call::CallInfo;
use crate::registry::{DeployError, Deployable};
use crate::runtime::{BoxFuture, CallState, World, WorldStore};

/// The contract version this host runs.
pub const PLUGIN_PACKAGE: &str = "polyscale:plugin";
pub const PLUGIN_VERSION: &str = "1.0.0";

/// What a plugin call writes to its log (the `log` interface, stdout,
/// stderr), kept up to a byte budget.
#[derive(Debug, Default)]
pub struct PluginLog {
    pub text: String,
    pub truncated: bool,
    budget: usize,
}

impl PluginLog {
    fn append(&mut self, bytes: &[u8]) {
        let room = self.budget.saturating_sub(self.text.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        let mut take = bytes.len().min(room);
        let text = String::from_utf8_lossy(&bytes[..take]);
        // Cut on a character boundary within the budget.
        let mut text = text.into_owned();
        while text.len() > room {
            take -= 1;
            text = String::from_utf8_lossy(&bytes[..take]).into_owned();
        }
        self.text.push_str(&text);
    }
}

/// A call's log, shared by the `log` import and WASI stdout/stderr.
#[derive(Clone, Default)]
pub struct LogSink(Arc<Mutex<PluginLog>>);

impl LogSink {
    fn new(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(PluginLog { budget, ..PluginLog::default() })))
    }

    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).append(bytes);
    }

    /// The log so far.
    pub fn take(&self) -> (String, bool) {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut log.text), log.truncated)
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl log::Host for LogSink {
    fn write(&mut self, message: String) -> wasmtime::Result<()> {
        LogSink::write(self, message.as_bytes());
        LogSink::write(self, b"\n");
        Ok(())
    }
}

/// Shared by the calls of one plugin kind.
pub struct PluginShared {
    /// Bytes of log kept per call.
    pub max_log_bytes: usize,
}

/// One plugin call's capability state: its log.
pub struct PluginCaps {
    pub log: LogSink,
}

/// Clocks stopped at zero: a plugin's answer cannot depend on time.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// The seed of every plugin call's "randomness".
const SEED: u64 = 0x706f_6c79_7363_616c;

fn deterministic_wasi(log: &LogSink) -> WasiCtx {
    WasiCtx::builder()
        .stdout(log.clone())
        .stderr(log.clone())
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .secure_random(StdRng::seed_from_u64(SEED))
        .insecure_random(StdRng::seed_from_u64(SEED))
        .insecure_random_seed(u128::from(SEED))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut LogSink;
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut wasmtime::component::ResourceTable;
}

/// Links `log` and the deterministic WASI stub; nothing else.
fn link(linker: &mut Linker<CallState<PluginCaps>>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    type T = CallState<PluginCaps>;

    log::add_to_linker::<T, HasLog>(linker, |t| &mut t.caps.log)?;
    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    Ok(())
}

/// WASI interfaces the stub answers (any 0.2.x version).
const STUB_WASI: &[&str] = &["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/"];

/// Refuses a component whose imports or exports name something plugins
/// never have, naming it: an import outside `types`, `log` and the WASI
/// stub, or
/// the plugin package at another version.
fn check_plugin(component: &Component, export: &str) -> Result<(), DeployError> {
    let ty = component.component_type();
    let engine = component.engine();
    for (name, _) in ty.imports(engine) {
        let allowed = ["types", "log"].iter().any(|i| name == format!("{PLUGIN_PACKAGE}/{i}@{PLUGIN_VERSION}"))
            || (STUB_WASI.iter().any(|p| name.starts_with(p)) && name.contains("@0.2."));
        if !allowed {
            let why = if name.starts_with(PLUGIN_PACKAGE) {
                format!("it imports `{name}`; this host runs {PLUGIN_PACKAGE}@{PLUGIN_VERSION}")
            } else {
                format!(
                    "it imports `{name}`, which plugins may not use (plugins are pure: no network, files, clock \
                     or randomness; see docs/plugins.md)"
                )
            };
            return Err(DeployError::Incompatible(why));
        }
    }
    let wanted = format!("{PLUGIN_PACKAGE}/{export}@{PLUGIN_VERSION}");
    let mut exports: Vec<String> = Vec::new();
    for (name, item) in ty.exports(engine) {
        if name == wanted && matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Ok(());
        }
        exports.push(name.to_string());
    }
    let other_version = exports.iter().find(|e| e.starts_with(&format!("{PLUGIN_PACKAGE}/{export}@")));
    Err(DeployError::Incompatible(match other_version {
        Some(found) => format!(
            "it exports `{found}`: built for another version of {PLUGIN_PACKAGE}; this host runs \
             {PLUGIN_VERSION}"
        ),
        None => format!(
            "it does not export `{wanted}` (it exports: {}); is it a plugin of the other kind, or not a \
             plugin?",
            if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
        ),
    }))
}

macro_rules! plugin_world {
    ($world:ident, $pre:ident, $exports:ident, $export:literal) => {
        impl World for $world {
            type Caps = PluginCaps;
            type Shared = PluginShared;
            type Pre = $pre<CallState<PluginCaps>>;
            type Exports = $exports;

            fn link(linker: &mut Linker<CallState<PluginCaps>>) -> wasmtime::Result<()> {
                link(linker)
            }

            fn pre(instance_pre: InstancePre<CallState<PluginCaps>>) -> wasmtime::Result<Self::Pre> {
                $pre::new(instance_pre)
            }

            fn instantiate<'a>(
                pre: &'a Self::Pre,
                store: &'a mut WorldStore<Self>,
            ) -> BoxFuture<'a, wasmtime::Result<$exports>> {
                Box::pin(pre.instantiate_async(store))
            }

            fn caps(shared: &PluginShared) -> PluginCaps {
                PluginCaps { log: LogSink::new(shared.max_log_bytes) }
            }

            fn wasi(_call: &CallInfo, caps: &PluginCaps) -> WasiCtx {
                deterministic_wasi(&caps.log)
            }
        }

        impl Deployable for $world {
            fn check(component: &Component) -> Result<(), DeployError> {
                check_plugin(component, $export)
            }
        }
    };
}

/// The `pricing` world.
pub struct PricingWorld;
/// The `validation` world.
pub struct ValidationWorld;

plugin_world!(PricingWorld, PricingPre, Pricing, "pricer");
plugin_world!(ValidationWorld, ValidationPre, Validation, "validator");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_keep_a_budget_and_cut_on_character_boundaries() {
        let sink = LogSink::new(10);
        sink.write("héllo ".as_bytes());
        sink.write("wörld and more".as_bytes());
        let (text, truncated) = sink.take();
        assert!(truncated);
        assert!(text.len() <= 10, "{text:?}");
        assert!(text.starts_with("héllo w"), "{text:?}");
    }
}
