//! The worker's clock: one monotonic read per burst, and a cycle counter for the busy
//! and total time the worker publishes.

use crate::Nanos;

/// Shared clock: nanoseconds since the runtime started (one read per burst).
#[derive(Debug, Clone, Copy)]
pub struct Clock(std::time::Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock(std::time::Instant::now())
    }
    /// Nanoseconds since start.
    pub fn now(&self) -> Nanos {
        self.0.elapsed().as_nanos() as Nanos
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a cycle counter: the TSC on x86_64, nanoseconds elsewhere.
#[inline(always)]
pub fn cycles(clock: &Clock) -> u64 {
    crate::arch::cycle_counter().unwrap_or_else(|| clock.now())
}
