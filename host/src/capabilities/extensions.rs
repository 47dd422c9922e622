//! `extensions`: the order component asks the host to run the merchants'
//! pricing and validation plugins on a cart. This module is the interface
//! only: what answers it is an [`Extensions`] (the plugin runner of
//! `crate::plugins`, or [`NoPlugins`]), so the capability knows nothing of
//! the runtime or the registry that run the plugins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::order::polyscale::commerce::extensions::{self as wit, Host};
pub use crate::bindings::order::polyscale::commerce::extensions::{
    ExtensionIssue, ExtensionLine, ExtensionOutcome, LinePricing, Step,
};
use crate::call::CallInfo;

pub type ExtensionsFuture<'a> = Pin<Box<dyn Future<Output = ExtensionOutcome> + Send + 'a>>;

/// Runs the merchants' plugins on a cart's lines. Never fails: a plugin
/// that fails becomes a blocking issue, or is left out (its merchant's
/// choice).
pub trait Extensions: Send + Sync + 'static {
    fn apply<'a>(&'a self, step: Step, lines: Vec<ExtensionLine>, call: &'a CallInfo) -> ExtensionsFuture<'a>;
}

/// No plugins: every line keeps its catalog price.
pub struct NoPlugins;

impl Extensions for NoPlugins {
    fn apply<'a>(&'a self, _step: Step, lines: Vec<ExtensionLine>, _call: &'a CallInfo) -> ExtensionsFuture<'a> {
        Box::pin(async move { unchanged(&lines) })
    }
}

/// The outcome that changes nothing.
pub fn unchanged(lines: &[ExtensionLine]) -> ExtensionOutcome {
    ExtensionOutcome {
        lines: lines
            .iter()
            .map(|l| LinePricing { unit_price: l.unit_price.clone(), discount: 0, notes: Vec::new() })
            .collect(),
        issues: Vec::new(),
    }
}

/// What the extensions host function sees.
pub struct ExtensionsCtxView<'a> {
    pub extensions: &'a Arc<dyn Extensions>,
    pub call: &'a CallInfo,
}

/// Store data that carries the extensions capability.
pub trait ExtensionsView: Send {
    fn extensions(&mut self) -> ExtensionsCtxView<'_>;
}

struct HasExtensions;

impl HasData for HasExtensions {
    type Data<'a> = ExtensionsCtxView<'a>;
}

/// Links `extensions` for any store data with an [`ExtensionsView`].
pub fn add_to_linker<T: ExtensionsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasExtensions>(linker, |t| t.extensions())
}

/// Most lines one call may carry (a cart's most, with room).
const MAX_LINES: usize = 1_000;

impl Host for ExtensionsCtxView<'_> {
    async fn apply(&mut self, step: Step, lines: Vec<ExtensionLine>) -> wasmtime::Result<ExtensionOutcome> {
        if lines.len() > MAX_LINES {
            wasmtime::bail!("extensions.apply: {} lines; at most {MAX_LINES}", lines.len());
        }
        Ok(self.extensions.apply(step, lines, self.call).await)
    }
}
