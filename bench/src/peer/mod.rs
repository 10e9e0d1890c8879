//! The peers statewall is measured against.

pub(crate) mod kernel;
pub(crate) mod ovs;
pub(crate) mod rte_hash;
