//! The control plane's side of the IP sets: the drainer thread that applies the
//! workers' queued `-j SET` changes and drops expired elements.

use anyhow::{Context, Result};
use dataplane::sets::SetRegistry;
use dataplane::worker::Clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the drainer runs: the delay between a `-j SET` rule matching and the
/// element being visible to `-m set` (docs/SETS.md).
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(2);

/// Starts the thread that drains every set's `-j SET` queue into one batch per set and
/// drops expired elements, until `stop`.
pub fn spawn_drainer(
    sets: SetRegistry,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("statewall-sets".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sets.drain(clock.now());
                std::thread::sleep(DRAIN_INTERVAL);
            }
        })
        .context("spawning the set drainer")
}
