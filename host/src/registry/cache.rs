//! The compiled-code cache: type-checked, pre-linked components keyed by
//! the SHA-256 of their bytes (and their world), shared by every slot and
//! bounded by a memory budget.
//!
//! Slots hold no compiled code of their own, only the id of their active
//! version, so thousands of slots cost their compiled code only while it is
//! in use. An evicted version is reloaded on its next call: its bytes from
//! the component store, compiled code from wasmtime's on-disk cache.
//! Eviction is quick_cache's Clock-PRO (a scan-resistant approximation of
//! least-recently-used); concurrent misses on one key load it once.

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

type Key = (TypeId, String);

/// A key to look up without allocating (hashes as [`Key`] does).
#[derive(Hash)]
struct KeyRef<'a>(TypeId, &'a str);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A compiled version and what it weighs.
#[derive(Clone)]
pub struct Compiled {
    /// The world's `Pre`, type-erased (the key's `TypeId` says which).
    pre: Arc<dyn Any + Send + Sync>,
    /// Bytes of compiled code in memory.
    pub bytes: u64,
}

impl Compiled {
    pub fn new<P: Any + Send + Sync>(pre: P, bytes: u64) -> Self {
        Self { pre: Arc::new(pre), bytes }
    }

    pub fn pre<P: Any + Send + Sync + Clone>(&self) -> Option<P> {
        self.pre.downcast_ref::<P>().cloned()
    }
}

#[derive(Clone)]
struct ByCodeSize;

impl Weighter<Key, Compiled> for ByCodeSize {
    fn weight(&self, _: &Key, value: &Compiled) -> u64 {
        value.bytes.max(1)
    }
}

pub struct CompiledCache {
    cache: Cache<Key, Compiled, ByCodeSize>,
    budget: u64,
}

impl CompiledCache {
    /// A cache holding at most `budget_bytes` of compiled code.
    pub fn new(budget_bytes: u64) -> Self {
        // The item estimate only sizes the table up front.
        let estimated = (budget_bytes / (256 << 10)).clamp(16, 65_536) as usize;
        Self { cache: Cache::with_weighter(estimated, budget_bytes, ByCodeSize), budget: budget_bytes }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of compiled code held now.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// Versions held now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    pub fn get(&self, world: TypeId, sha256: &str) -> Option<Compiled> {
        self.cache.get(&KeyRef(world, sha256))
    }

    pub fn insert(&self, world: TypeId, sha256: &str, compiled: Compiled) {
        self.cache.insert((world, sha256.to_string()), compiled);
    }

    /// The cached version, or `load`'s (cached for next time). Concurrent
    /// callers for one key wait for a single load.
    pub async fn get_or_load<E>(
        &self,
        world: TypeId,
        sha256: &str,
        load: impl Future<Output = Result<Compiled, E>>,
    ) -> Result<Compiled, E> {
        if let Some(hit) = self.get(world, sha256) {
            return Ok(hit);
        }
        self.cache.get_or_insert_async(&(world, sha256.to_string()), load).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_without_allocating_find_what_was_inserted() {
        let cache = CompiledCache::new(1 << 20);
        let world = TypeId::of::<u8>();
        cache.insert(world, "abc", Compiled::new(7u32, 100));
        assert_eq!(cache.get(world, "abc").and_then(|c| c.pre::<u32>()), Some(7));
        assert!(cache.get(TypeId::of::<u16>(), "abc").is_none(), "another world's entry");
        assert!(cache.get(world, "abd").is_none());
        assert_eq!(cache.weight(), 100);
    }

    #[test]
    fn the_budget_bounds_what_is_held() {
        let cache = CompiledCache::new(1_000);
        let world = TypeId::of::<u8>();
        for i in 0..50 {
            cache.insert(world, &format!("v{i}"), Compiled::new(i, 300));
            assert!(cache.weight() <= 1_000);
        }
        assert!(cache.get(world, "v49").is_some(), "the newest stays");
    }
}
