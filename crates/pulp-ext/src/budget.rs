//! A plugin's host memory budget: the bytes the host holds on a plugin's behalf
//! (queued events, encoded results, SSE backlogs, WebSocket send queues, container
//! output), charged before the host builds them and released when it lets them go.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The default budget, `[limits] host_memory_mb = 64`.
pub const DEFAULT_HOST_MEMORY: usize = 64 << 20;

/// A plugin's host memory budget. Cheap to clone; every clone is the same budget.
///
/// ```
/// let budget = pulp_ext::Budget::new(100);
/// let a = budget.charge(60).unwrap();
/// assert!(budget.charge(60).is_err()); // 120 > 100
/// drop(a);                              // released with the buffer it paid for
/// assert!(budget.charge(60).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

/// Charging would pass the budget; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plugin's host memory budget is used up ({wanted} more bytes asked, {used} of {limit} in use; [limits] host_memory_mb)"
)]
pub struct OverBudget {
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes in use when asked.
    pub used: usize,
    /// The budget.
    pub limit: usize,
}

impl From<OverBudget> for crate::Error {
    fn from(e: OverBudget) -> Self {
        crate::Status::TooLarge.err(e.to_string())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_HOST_MEMORY)
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget(Arc::new(Inner {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// Charges `bytes`, or refuses when they would pass the limit. The charge is
    /// released when the returned [`Charge`] is dropped.
    pub fn charge(&self, bytes: usize) -> Result<Charge, OverBudget> {
        self.take(bytes)?;
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Charges `bytes` even past the limit: for what must never be refused and is
    /// bounded elsewhere (a connection's close event; connections are counted).
    pub fn charge_anyway(&self, bytes: usize) -> Charge {
        self.0.used.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    fn take(&self, bytes: usize) -> Result<(), OverBudget> {
        let limit = self.0.limit;
        self.0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|n| *n <= limit)
            })
            .map(|_| ())
            .map_err(|used| OverBudget {
                wanted: bytes,
                used,
                limit,
            })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

/// Bytes charged to a [`Budget`], released on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Budget,
    bytes: usize,
}

impl Charge {
    /// Charges `more` bytes to the same budget (a buffer that grows as it is built).
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        self.budget.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Bytes held by this charge.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_release() {
        let b = Budget::new(10);
        let mut c = b.charge(4).unwrap();
        c.grow(6).unwrap();
        assert_eq!(b.used(), 10);
        assert_eq!(c.grow(1).unwrap_err().used, 10);
        let forced = b.charge_anyway(5);
        assert_eq!(b.used(), 15);
        drop((c, forced));
        assert_eq!(b.used(), 0);
        assert!(b.charge(usize::MAX).is_err());
    }
}
