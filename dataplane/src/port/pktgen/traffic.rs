//! The generator's configuration: [`PktgenConfig`] and the [`Traffic`] it offers.

use std::net::Ipv4Addr;

/// L4 protocol of range traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProto {
    /// UDP datagrams.
    Udp,
    /// TCP segments with the ACK flag (as pktgen-dpdk sends them; conntrack without loose
    /// pickup calls them INVALID).
    Tcp,
    /// TCP SYNs, each flow a new connection attempt from a spoofed client that never
    /// answers (the servers of range traffic do not reply): a SYN flood, every flow an
    /// unreplied conntrack entry (early-drop fodder when the table is full).
    Syn,
}

/// pktgen-dpdk-like range traffic: flow `i` uses `min + i % (max - min + 1)` for each
/// field (all fields step together, as pktgen's range mode does), `flows` flows cycled.
#[derive(Debug, Clone)]
pub struct RangeTraffic {
    /// Protocol.
    pub proto: RangeProto,
    /// Source address range (inclusive).
    pub src_ip: (Ipv4Addr, Ipv4Addr),
    /// Destination address range (inclusive).
    pub dst_ip: (Ipv4Addr, Ipv4Addr),
    /// Source port range (inclusive).
    pub sport: (u16, u16),
    /// Destination port range (inclusive).
    pub dport: (u16, u16),
    /// Frame size in bytes (no FCS), at least the headers' size.
    pub frame_size: usize,
    /// Number of distinct flows cycled.
    pub flows: u32,
}

impl Default for RangeTraffic {
    fn default() -> Self {
        RangeTraffic {
            proto: RangeProto::Udp,
            src_ip: (Ipv4Addr::new(16, 0, 0, 1), Ipv4Addr::new(16, 0, 0, 254)),
            dst_ip: (Ipv4Addr::new(48, 0, 0, 1), Ipv4Addr::new(48, 0, 0, 254)),
            sport: (1024, 65535),
            dport: (5000, 5999),
            frame_size: 64,
            flows: 1024,
        }
    }
}

/// Realistic connection lifecycles.
#[derive(Debug, Clone)]
pub struct LifecycleTraffic {
    /// Concurrent connections (over all queues).
    pub concurrent: u32,
    /// Relative weight of TCP connections.
    pub tcp_weight: u32,
    /// Relative weight of UDP exchanges.
    pub udp_weight: u32,
    /// Relative weight of ICMP echoes.
    pub icmp_weight: u32,
    /// Request/response rounds per TCP connection (at least 1).
    pub tcp_requests: u32,
    /// Request/response rounds per UDP flow (at least 1).
    pub udp_exchanges: u32,
    /// Client request payload bytes.
    pub request_size: u16,
    /// Server response payload bytes.
    pub response_size: u16,
    /// One TCP connection in this many ends with a client RST instead of FINs (0: never).
    pub rst_one_in: u32,
    /// Total connections to start, over all queues (0: no limit).
    pub max_connections: u64,
    /// A connection with no progress for this long is abandoned and counted timed out.
    pub timeout_ns: u64,
    /// Every connection of a client slot reuses the slot's tuple (same source port,
    /// same server), like a load tester with a fixed port per client: a new TCP
    /// connection reopens the TIME_WAIT/CLOSE entry of the previous one (as Linux does)
    /// and UDP/ICMP exchanges refresh theirs, so the table holds about `concurrent`
    /// entries however long it runs. False: every connection takes a fresh source port
    /// (connection churn; TIME_WAIT entries pile up for 120 s each, as in Linux).
    pub reuse_ports: bool,
    /// First client address; client `i` uses this plus `i` (a /8 holds 16 M clients).
    pub clients: Ipv4Addr,
    /// First server address.
    pub servers: Ipv4Addr,
    /// Number of server addresses.
    pub server_count: u32,
    /// TCP server port.
    pub tcp_port: u16,
    /// UDP server port.
    pub udp_port: u16,
}

impl Default for LifecycleTraffic {
    fn default() -> Self {
        LifecycleTraffic {
            concurrent: 1024,
            tcp_weight: 8,
            udp_weight: 1,
            icmp_weight: 1,
            tcp_requests: 2,
            udp_exchanges: 1,
            request_size: 200,
            response_size: 1000,
            rst_one_in: 10,
            max_connections: 0,
            timeout_ns: 1_000_000_000,
            reuse_ports: false,
            clients: Ipv4Addr::new(10, 0, 0, 0),
            servers: Ipv4Addr::new(192, 168, 100, 1),
            server_count: 16,
            tcp_port: 80,
            udp_port: 53,
        }
    }
}

/// Established TCP connections exchanging small data segments.
#[derive(Debug, Clone)]
pub struct EstablishedTraffic {
    /// Connections (over all queues).
    pub flows: u32,
    /// Frame size of data segments (54 bytes of headers; 64 gives 10 payload bytes).
    pub frame_size: usize,
    /// A connection with no reply for this long retransmits its last segment.
    pub timeout_ns: u64,
    /// First client address.
    pub clients: Ipv4Addr,
    /// First server address.
    pub servers: Ipv4Addr,
    /// Number of server addresses.
    pub server_count: u32,
    /// Server port.
    pub port: u16,
}

impl Default for EstablishedTraffic {
    fn default() -> Self {
        EstablishedTraffic {
            flows: 1024,
            frame_size: 64,
            timeout_ns: 100_000_000,
            clients: Ipv4Addr::new(10, 0, 0, 0),
            servers: Ipv4Addr::new(192, 168, 100, 1),
            server_count: 16,
            port: 80,
        }
    }
}

/// What the generator offers.
#[derive(Debug, Clone)]
pub enum Traffic {
    /// pktgen-dpdk-like ranges, one direction.
    Range(RangeTraffic),
    /// Full connection lifecycles.
    Lifecycle(LifecycleTraffic),
    /// Handshaken TCP connections, then data only.
    Established(EstablishedTraffic),
}

/// Generator configuration.
#[derive(Debug, Clone)]
pub struct PktgenConfig {
    /// Queues per port (one per worker).
    pub queues: u16,
    /// Traffic.
    pub traffic: Traffic,
    /// Offered rate of client packets in packets per second, over all queues
    /// (0: as fast as the worker polls). Server replies are not rate limited.
    pub rate_pps: u64,
    /// Server replies waiting to be received, per queue (beyond: dropped and counted).
    pub reply_ring: usize,
}

impl Default for PktgenConfig {
    fn default() -> Self {
        PktgenConfig {
            queues: 1,
            traffic: Traffic::Lifecycle(LifecycleTraffic::default()),
            rate_pps: 0,
            reply_ring: 4096,
        }
    }
}
