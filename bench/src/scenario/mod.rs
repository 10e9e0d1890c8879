//! The scenarios of the suite, one module per family (`--only` selects them by name).

pub(crate) mod churn;
pub(crate) mod established;
pub(crate) mod nat;
pub(crate) mod pipeline;
pub(crate) mod ruleset;
pub(crate) mod scaling;
pub(crate) mod sets;
pub(crate) mod soak;
pub(crate) mod swaps;
pub(crate) mod synflood;
pub(crate) mod vcache;
