//! [`Summary`]: what a ruleset holds, for `statewall rules check`.

use super::Table;
use crate::packet::Family;
use std::fmt;

/// Counts of what a ruleset holds, for `statewall rules check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The family.
    pub family: Family,
    /// Per table given in the text, its chains (built-ins first).
    pub tables: Vec<(Table, Vec<ChainSummary>)>,
    /// Total rules.
    pub rules: usize,
}

/// One chain in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// The chain's name.
    pub name: String,
    /// `ACCEPT`, `DROP`, or `-` for a user chain.
    pub policy: String,
    /// Number of rules.
    pub rules: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        writeln!(f, "{fam}: {} rules", self.rules)?;
        for (t, chains) in &self.tables {
            let n: usize = chains.iter().map(|c| c.rules).sum();
            writeln!(
                f,
                "  table {}: {} chains, {} rules",
                t.name(),
                chains.len(),
                n
            )?;
            for c in chains {
                writeln!(f, "    {} (policy {}): {} rules", c.name, c.policy, c.rules)?;
            }
        }
        Ok(())
    }
}
