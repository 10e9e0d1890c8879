//! statewall's control plane: configuration, the runtime that starts ports and
//! workers, offline replay, and the operator-facing commands.

pub mod api;
pub mod config;
pub mod ctl;
pub mod doctor;
pub mod notify;
pub mod ports;
pub mod replay;
pub mod run;
pub mod runtime;
pub mod sets;
