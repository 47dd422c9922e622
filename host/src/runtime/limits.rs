//! Per-call bounds.

use std::time::Duration;

use wasmtime::ResourceLimiter;

#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Wall time for instantiation plus the call, host I/O included.
    pub timeout: Duration,
    /// Largest linear memory the instance may grow to.
    pub max_memory_bytes: usize,
    /// Most table elements one table may hold.
    pub max_table_elements: usize,
    /// Instructions (wasmtime fuel) the call may execute, instantiation
    /// included; only on an engine built with fuel metering
    /// ([`RuntimeConfig::fuel`](super::RuntimeConfig::fuel)).
    pub fuel: Option<u64>,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), max_memory_bytes: 64 << 20, max_table_elements: 100_000, fuel: None }
    }
}

/// The error that stops a guest asking for more memory than it may have.
/// Returned as a trap (rather than a failed `memory.grow`) so the host can
/// tell the caller exactly which limit was hit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {desired})")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

pub struct MemoryLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// The largest linear memory any instance of the call grew to.
    peak_memory_bytes: usize,
}

impl MemoryLimiter {
    pub fn new(limits: &CallLimits) -> Self {
        Self {
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            peak_memory_bytes: 0,
        }
    }

    /// The largest linear memory the call's instances reached.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            return Err(MemoryLimitExceeded { limit: self.max_memory_bytes, desired }.into());
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    // Interpreted languages' components (Python, JavaScript) are a dozen
    // or more core instances with their own memories and tables.
    fn instances(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }
}
