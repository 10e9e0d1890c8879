//! statewall's fast path.
//!
//! * [`packet`]: zero-copy views over raw frames, checksums, and a small builder.
//! * [`conntrack`]: Linux-faithful connection tracking, sans-IO (time is passed in).
//! * [`ruleset`]: the compiled, immutable iptables-style ruleset and its evaluation.
//! * [`port`]: the `Port` trait (rx/tx bursts over pooled buffers) and its backends.
//! * [`worker`]: the poll loop: rx burst -> parse -> conntrack -> rules -> tx burst.
//!
//! Nothing in this crate allocates, locks or makes a system call per packet on the
//! hot path; the modules say where they differ (control-plane helpers, builders).

pub mod conntrack;
pub mod packet;
pub mod port;
pub mod ruleset;
pub mod worker;
