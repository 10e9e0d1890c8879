//! Ports (placeholder; being written).
