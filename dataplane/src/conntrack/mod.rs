//! Connection tracking (placeholder; being written).

pub mod defrag;

/// The conntrack state of a packet, as `-m state` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtState {
    /// First packet of a connection, or no reply seen yet.
    New,
    /// Packets seen in both directions.
    Established,
    /// A new connection tied to an existing one (expectation or ICMP error).
    Related,
    /// Not associated with any known connection.
    Invalid,
    /// Exempted from tracking in the raw table.
    Untracked,
}

/// Direction of a packet relative to its connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Same direction as the first packet.
    Original,
    /// The other direction.
    Reply,
}

/// Connection status bits (`--ctstatus`), as in Linux's `IPS_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStatus(pub u8);

impl CtStatus {
    /// Created from an expectation (never cleared).
    pub const EXPECTED: u8 = 1 << 0;
    /// A reply has been seen (never cleared).
    pub const SEEN_REPLY: u8 = 1 << 1;
    /// Protected from early drop.
    pub const ASSURED: u8 = 1 << 2;
    /// The entry is in the table.
    pub const CONFIRMED: u8 = 1 << 3;

    /// True when every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// Monotonic time in nanoseconds, passed in by the caller (conntrack never reads a clock).
pub type Nanos = u64;
