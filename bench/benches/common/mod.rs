//! What the criterion benches share.

use criterion::Criterion;
use std::time::Duration;

/// Criterion as the benches run it: 10 samples measured for 2 s after a warm-up of
/// `warm_up_ms`.
pub fn config(warm_up_ms: u64) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_secs(2))
}
