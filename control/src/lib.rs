//! statewall's control plane: configuration, the runtime that starts ports and
//! workers, offline replay, and the operator-facing commands.

pub mod config;
pub mod replay;
pub mod runtime;
