//! The worker poll loop (placeholder; being written).
