//! Rulesets (placeholder; being written).
