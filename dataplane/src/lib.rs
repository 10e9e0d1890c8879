//! statewall's fast path.
//!
//! * [`packet`]: zero-copy views over raw frames, checksums, and a small builder.
//! * [`steer`]: which worker owns a packet's connection (the steering models that ports
//!   and workers share).
//! * [`defrag`]: virtual reassembly of IP fragments before conntrack (Linux's
//!   `nf_defrag_ipv4/6`, a sibling of conntrack, not a part of it).
//! * [`conntrack`]: Linux-faithful connection tracking, sans-IO (time is passed in).
//! * [`sets`]: IP sets as ipset has them, lock-free for readers.
//! * [`ruleset`]: the compiled, immutable iptables-style ruleset and its evaluation.
//! * [`port`]: the `Port` trait (rx/tx bursts over pooled buffers) and its backends.
//! * [`worker`]: the poll loop: rx burst -> parse -> conntrack -> rules -> tx burst.
//!
//! Nothing in this crate allocates, locks or makes a system call per packet on the
//! hot path; the modules say where they differ (control-plane helpers, builders).
//!
//! `unsafe` is denied here and allowed only where the hardware or the kernel needs it:
//! [`arch`]'s intrinsics and the port backends that map rings and call into the kernel
//! or DPDK (`port::{sys, af_packet, af_xdp, dpdk, testnet}`). docs/ARCHITECTURE.md has
//! the module map and the layer rules (checked by `tests/layers.rs`).

#![deny(unsafe_code)]

pub(crate) mod arch;
pub mod conntrack;
pub mod defrag;
pub mod packet;
pub mod port;
pub mod ruleset;
pub mod sets;
pub mod steer;
pub mod worker;

/// Monotonic time in nanoseconds: what every sans-IO layer takes as "now" (conntrack,
/// defrag, ports' timestamps). Defined once; `conntrack::Nanos` and `port::Nanos` name it.
pub type Nanos = u64;
