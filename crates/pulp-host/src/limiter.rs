//! The store limiter: `[limits] memory_mb` bounds the sum of every linear memory
//! and table of an instance. wasmtime's `StoreLimits` bounds each memory alone, so a
//! guest with four memories held four times its budget.

use pulp_ext::wasmtime::{ResourceLimiter, Result};

/// What one table element is charged, in bytes: an upper bound of what an element
/// costs the host (a `funcref` or `externref` slot is one 8-byte pointer).
pub(crate) const TABLE_ELEMENT_BYTES: usize = 16;

/// Instances, memories and tables one store may create: a plugin is one module;
/// multi-memory and reference types are allowed within these counts.
const INSTANCES: usize = 4;
const MEMORIES: usize = 4;
const TABLES: usize = 16;

/// Charges every growth of any memory or table of one store (creation included: it
/// is growth from 0) to one byte budget, and refuses growth past it, so `memory.grow`
/// and `table.grow` give -1 and instantiation fails.
///
/// Nothing is ever given back: wasm memories and tables do not shrink, and a store
/// lives as long as its instance. A growth the limiter allowed that wasmtime then
/// fails (the OS refused the memory) stays charged, erring on the side of the cap.
pub(crate) struct Limiter {
    cap: usize,
    used: usize,
}

impl Limiter {
    /// A budget of `cap` bytes for the store's memories and tables together.
    pub(crate) fn new(cap: usize) -> Limiter {
        Limiter { cap, used: 0 }
    }

    fn grow(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> bool {
        // Past its own maximum, wasmtime would fail the growth after we allowed it:
        // refuse it here, so that it is not charged.
        if maximum.is_some_and(|m| desired > m) {
            return false;
        }
        let more = desired.saturating_sub(current);
        match self.used.checked_add(more) {
            Some(total) if total <= self.cap => {
                self.used = total;
                true
            }
            _ => false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(self.grow(current, desired, maximum))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.grow(bytes(current), bytes(desired), maximum.map(bytes)))
    }

    fn instances(&self) -> usize {
        INSTANCES
    }

    fn memories(&self) -> usize {
        MEMORIES
    }

    fn tables(&self) -> usize {
        TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut l = Limiter::new(4 << 16);
        assert!(
            l.memory_growing(0, 2 << 16, None).unwrap(),
            "a first memory"
        );
        assert!(l.memory_growing(0, 1 << 16, None).unwrap(), "a second one");
        assert!(
            !l.memory_growing(1 << 16, 3 << 16, None).unwrap(),
            "past the sum"
        );
        let left = (1 << 16) / TABLE_ELEMENT_BYTES;
        assert!(!l.table_growing(0, left + 1, None).unwrap());
        assert!(
            l.table_growing(0, left, None).unwrap(),
            "exactly what is left"
        );
        assert!(
            !l.memory_growing(2 << 16, 3 << 16, None).unwrap(),
            "all used"
        );
    }

    #[test]
    fn growth_past_a_declared_maximum_is_refused_uncharged() {
        let mut l = Limiter::new(4 << 16);
        assert!(!l.memory_growing(0, 3 << 16, Some(2 << 16)).unwrap());
        assert!(
            l.memory_growing(0, 4 << 16, None).unwrap(),
            "nothing charged"
        );
        assert!(
            !l.memory_growing(0, usize::MAX, None).unwrap(),
            "no overflow"
        );
    }
}
