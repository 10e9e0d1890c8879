//! Connection tracking (placeholder; being written).

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
