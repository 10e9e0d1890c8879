//! statewall benchmarks.
