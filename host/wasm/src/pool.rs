//! Instance pools: the idle instances of one processor, bounded by permits so a processor
//! never holds more live instances than it reserved, the `tick` policy, and the runtime-wide
//! budget that keeps the sum of every processor's reservation within what the pooling
//! allocator was configured for.
//!
//! `tick(now)` goes only to instances that processed something since their last tick (and
//! are idle at the periodic pass), and an instance that missed a due tick while unused gets
//! one just before its next batch. A plugin therefore always sees the time advance before it
//! handles data, idle or stateless plugins cost nothing, and no instance is taken away from
//! the pipeline for a tick it has no use for. (The plugin contract has no way to say whether
//! a plugin uses `tick`, and it is a released contract, so the host decides from use.)

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::call::Instance;
use crate::error::CallError;

/// How often used instances get `tick`.
pub(crate) const TICK_EVERY: Duration = Duration::from_secs(1);

/// Live instances the runtime's processors may hold together.
pub(crate) struct InstanceBudget {
    limit: usize,
    reserved: Mutex<usize>,
}

/// Room for some live instances; given back when dropped.
pub(crate) struct Reservation {
    budget: Arc<InstanceBudget>,
    granted: usize,
}

impl InstanceBudget {
    pub(crate) fn new(limit: usize) -> Self {
        InstanceBudget {
            limit,
            reserved: Mutex::new(0),
        }
    }

    /// Up to `want` instances; fewer when the budget is short, an error when none is left.
    pub(crate) fn reserve(budget: &Arc<Self>, want: usize) -> Result<Reservation, String> {
        let mut reserved = budget.reserved.lock();
        let granted = want.min(budget.limit.saturating_sub(*reserved));
        if granted == 0 {
            return Err(format!(
                "no plugin instance left: the plugin runtime holds {} live instances and other \
                 plugin processors reserve them all; use fewer plugin processors or pipelines",
                budget.limit
            ));
        }
        *reserved += granted;
        Ok(Reservation {
            budget: budget.clone(),
            granted,
        })
    }
}

impl Reservation {
    /// How many instances were granted.
    pub(crate) fn granted(&self) -> usize {
        self.granted
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.budget.reserved.lock() -= self.granted;
    }
}

/// An instance with its tick bookkeeping.
pub(crate) struct Pooled {
    pub(crate) inst: Instance,
    used_since_tick: bool,
    last_tick: Instant,
}

impl Pooled {
    pub(crate) fn new(inst: Instance) -> Self {
        Pooled {
            inst,
            used_since_tick: false,
            last_tick: Instant::now(),
        }
    }

    /// Gives the instance its due tick, if it missed one while unused.
    pub(crate) async fn catch_up(&mut self) -> Result<(), CallError> {
        if self.last_tick.elapsed() >= TICK_EVERY {
            self.tick().await?;
        }
        Ok(())
    }

    /// Marks the instance used (it then gets the next periodic tick).
    pub(crate) fn used(&mut self) {
        self.used_since_tick = true;
    }

    async fn tick(&mut self) -> Result<(), CallError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        self.inst.tick(now).await?;
        self.used_since_tick = false;
        self.last_tick = Instant::now();
        Ok(())
    }
}

/// The idle instances of one processor; at most `reservation.granted()` live at once.
pub(crate) struct Pool {
    idle: Mutex<Vec<Pooled>>,
    permits: Semaphore,
    reservation: Reservation,
}

impl Pool {
    /// A pool holding `first`, sized by `reservation`.
    pub(crate) fn new(reservation: Reservation, first: Instance) -> Self {
        Pool {
            idle: Mutex::new(vec![Pooled::new(first)]),
            permits: Semaphore::new(reservation.granted()),
            reservation,
        }
    }

    /// Waits for the right to hold one live instance; `None` once the pool is closed.
    pub(crate) async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// An idle instance, if any. Call with a permit held.
    pub(crate) fn take(&self) -> Option<Pooled> {
        self.idle.lock().pop()
    }

    /// Returns an instance (before its permit is released).
    pub(crate) fn put(&self, p: Pooled) {
        let mut idle = self.idle.lock();
        if idle.len() < self.reservation.granted() {
            idle.push(p);
        }
    }

    /// Ticks the idle instances used since their last tick. Holds a permit per instance,
    /// so the pipeline never creates extra instances while one is being ticked.
    pub(crate) async fn tick_used(&self) {
        for _ in 0..self.reservation.granted() {
            let Ok(_permit) = self.permits.try_acquire() else {
                return;
            };
            let taken = {
                let mut idle = self.idle.lock();
                let at = idle.iter().position(|p| p.used_since_tick);
                at.map(|i| idle.swap_remove(i))
            };
            let Some(mut p) = taken else {
                return;
            };
            match p.tick().await {
                Ok(()) => self.put(p),
                Err(e) => tracing::warn!(error = %e, "plugin tick failed; instance discarded"),
            }
        }
    }

    /// Refuses new permits and drops the idle instances.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_shrinks_then_refuses_then_takes_back() {
        let budget = Arc::new(InstanceBudget::new(5));
        let a = InstanceBudget::reserve(&budget, 4).unwrap();
        assert_eq!(a.granted(), 4);
        // Short budget: fewer than wanted rather than more than the pool holds.
        let b = InstanceBudget::reserve(&budget, 4).unwrap();
        assert_eq!(b.granted(), 1);
        let refused = InstanceBudget::reserve(&budget, 1).err().unwrap();
        assert!(refused.contains("holds 5 live instances"), "{refused}");
        drop(a);
        assert_eq!(InstanceBudget::reserve(&budget, 8).unwrap().granted(), 4);
    }
}
