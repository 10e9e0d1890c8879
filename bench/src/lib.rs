//! statewall benchmarks: helpers shared by the criterion benches (`benches/`) and the
//! `statewall-bench` binary (`src/main.rs`).
//!
//! Everything here builds real frames with [`dataplane::packet::build::PacketSpec`] and
//! drives the real [`ConnTable`] / [`Ruleset`]; nothing is simulated.

use dataplane::conntrack::{ConnTable, Nanos, Track, TrackOpts};
use dataplane::packet::build::PacketSpec;
use dataplane::packet::{parse, tcp_flags as tf, Frame, Parsed};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Frame size of established data packets (54 bytes of headers + 10 bytes of payload).
pub const FRAME: usize = 64;
/// Packets per burst, as the worker's default.
pub const BURST: usize = 32;

/// The client socket of flow `i` (one address per flow, up to 16 M flows).
pub fn client(i: u32) -> SocketAddr {
    let a = (10u32 << 24) | ((i + 1) & 0x00ff_ffff);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), 1024 + (i % 60000) as u16)
}

/// The server socket of flow `i` (16 servers, port 80).
pub fn server(i: u32) -> SocketAddr {
    let a = u32::from(Ipv4Addr::new(192, 168, 100, 1)) + (i % 16);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), 80)
}

/// Initial sequence numbers (client, server) of flow `i`.
pub fn isn(i: u32) -> (u32, u32) {
    let h = splitmix(i as u64);
    (h as u32, (h >> 32) as u32)
}

/// SplitMix64 step (a bijective mixer).
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic PRNG (xorshift64*), the same one the C peer could reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(splitmix(seed) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }
}

/// How flows are picked for each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every flow equally likely.
    Uniform,
    /// Zipf with s = 1.0: flow of rank k has probability proportional to 1/k.
    Zipf,
}

impl Pattern {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Uniform => "uniform",
            Pattern::Zipf => "zipf",
        }
    }
}

/// `len` flow indices in [0, n) drawn with `pattern`. Zipf (s = 1) uses the continuous
/// inverse of its CDF (k = floor((n+1)^u)), then scatters ranks over flows with a fixed
/// permutation-free mix so that hot flows are not neighbours in any array.
pub fn access_order(n: u32, len: usize, pattern: Pattern, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    let ln = ((n as f64) + 1.0).ln();
    (0..len)
        .map(|_| match pattern {
            Pattern::Uniform => r.below(n),
            Pattern::Zipf => {
                let k = ((r.f64() * ln).exp() as u64).clamp(1, n as u64) - 1;
                // rank k -> flow (k * odd constant) mod n keeps it a bijection only for
                // powers of two; a plain multiplicative scatter is fine for our purpose.
                ((k.wrapping_mul(2_654_435_761)) % n as u64) as u32
            }
        })
        .collect()
}

/// Writes a TCP segment of flow `i` into `buf`; `from_client` picks the direction.
pub fn tcp_frame(
    i: u32,
    from_client: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
    buf: &mut [u8],
) -> usize {
    let (c, s) = (client(i), server(i));
    let (a, b) = if from_client { (c, s) } else { (s, c) };
    PacketSpec::tcp(a, b, flags, seq, ack)
        .payload(payload)
        .write(buf)
        .expect("frame fits")
}

/// Writes a UDP datagram of flow `i` into `buf` (client port, server port 53).
pub fn udp_frame(i: u32, from_client: bool, payload: &[u8], buf: &mut [u8]) -> usize {
    let c = client(i);
    let s = SocketAddr::new(server(i).ip(), 53);
    let (a, b) = if from_client { (c, s) } else { (s, c) };
    PacketSpec::udp(a, b)
        .payload(payload)
        .write(buf)
        .expect("frame fits")
}

/// The 64-byte client data segment of established flow `i` (10 payload bytes).
pub fn data_frame(i: u32, buf: &mut [u8]) -> usize {
    let (ci, si) = isn(i);
    tcp_frame(
        i,
        true,
        tf::ACK | tf::PSH,
        ci.wrapping_add(1),
        si.wrapping_add(1),
        &[0x5a; FRAME - 54],
        buf,
    )
}

/// Parses an IP frame (panics on anything else: benches build their own frames).
#[inline(always)]
pub fn parsed(frame: &[u8]) -> Parsed {
    match parse(frame) {
        Ok(Frame::Ip(p)) => p,
        other => panic!("bench frame did not parse: {other:?}"),
    }
}

/// parse + track + confirm(accepted) of one frame, as the pipeline does with an
/// accepting ruleset.
#[inline(always)]
pub fn track_accept(t: &mut ConnTable, frame: &[u8], now: Nanos) -> Track {
    let p = parsed(frame);
    let tr = t.track(frame, &p, now, TrackOpts::default());
    if tr.candidate {
        let _ = t.confirm(&tr, true, frame, &p, now);
    }
    tr
}

/// SYN, SYN-ACK, ACK of flow `i` through `t`; true when the connection ends ESTABLISHED
/// and confirmed.
pub fn handshake(t: &mut ConnTable, i: u32, now: Nanos, buf: &mut [u8]) -> bool {
    let (ci, si) = isn(i);
    let n = tcp_frame(i, true, tf::SYN, ci, 0, &[], buf);
    let a = track_accept(t, &buf[..n], now);
    let n = tcp_frame(
        i,
        false,
        tf::SYN | tf::ACK,
        si,
        ci.wrapping_add(1),
        &[],
        buf,
    );
    let b = track_accept(t, &buf[..n], now);
    let n = tcp_frame(
        i,
        true,
        tf::ACK,
        ci.wrapping_add(1),
        si.wrapping_add(1),
        &[],
        buf,
    );
    let c = track_accept(t, &buf[..n], now);
    a.candidate && a.handle.is_some() && b.handle.is_some() && c.handle.is_some()
}

/// A table of `capacity` holding `n` handshaken TCP connections (flows 0..n);
/// returns the table and how many handshakes failed.
pub fn established_table(capacity: usize, n: u32) -> (ConnTable, u32) {
    let mut t = ConnTable::new(capacity, Default::default());
    let mut buf = [0u8; 256];
    let mut failed = 0;
    for i in 0..n {
        if !handshake(&mut t, i, 1_000, &mut buf) {
            failed += 1;
        }
    }
    (t, failed)
}

/// Data frames of flows 0..n, `FRAME` bytes each, back to back.
pub fn data_frames(n: u32) -> Vec<u8> {
    let mut v = vec![0u8; n as usize * FRAME];
    for i in 0..n {
        let o = i as usize * FRAME;
        let len = data_frame(i, &mut v[o..o + FRAME]);
        debug_assert_eq!(len, FRAME);
    }
    v
}

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// What the packets of a ruleset benchmark look like to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMix {
    /// NEW packets: they skip the ESTABLISHED rule and walk every filler rule.
    NewHeavy,
    /// ESTABLISHED packets: they hit the first rule.
    EstablishedHeavy,
}

impl RuleMix {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            RuleMix::NewHeavy => "new",
            RuleMix::EstablishedHeavy => "established",
        }
    }
}

/// An `iptables-restore` ruleset of exactly `n` FORWARD rules (n >= 2): an early
/// `ESTABLISHED,RELATED` accept, `n - 2` filler rules that never match the bench flows
/// (sources in 172.16/12, ports and protocols varied), and a last rule accepting NEW
/// connections from `inside`. `accept_dport` restricts that last rule to one TCP port.
pub fn ruleset_text(n: usize, accept_dport: Option<u16>) -> String {
    let n = n.max(2);
    let mut s = String::with_capacity(n * 80);
    s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for k in 0..n - 2 {
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + k as u32);
        match k % 4 {
            0 => s.push_str(&format!(
                "-A FORWARD -s {src}/32 -p tcp -m tcp --dport {} -j DROP\n",
                1 + k % 60000
            )),
            1 => s.push_str(&format!(
                "-A FORWARD -s {src}/32 -p udp -m udp --dport {} -j ACCEPT\n",
                1 + k % 60000
            )),
            2 => s.push_str(&format!(
                "-A FORWARD -s {src}/32 -d 192.0.2.{}/32 -j DROP\n",
                k % 250
            )),
            _ => s.push_str(&format!(
                "-A FORWARD -s {src}/32 -p tcp -m multiport --dports 22,{} -j ACCEPT\n",
                1000 + k % 50000
            )),
        }
    }
    match accept_dport {
        Some(p) => s.push_str(&format!(
            "-A FORWARD -i inside -p tcp -m tcp --dport {p} -m conntrack --ctstate NEW -j ACCEPT\n"
        )),
        None => s.push_str("-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT\n"),
    }
    s.push_str("COMMIT\n");
    s
}

/// OVS `test-conntrack benchmark` packet: Ethernet/IPv4/UDP 10.1.1.1 -> 10.1.1.2,
/// source port 1 + `tid`, destination port 2 (+ `i` when `change`), the exact bytes of
/// `tests/test-conntrack.c`'s `payload`.
pub fn ovs_packet(tid: u16, i: u16, change: bool) -> Vec<u8> {
    const HEX: &str =
        "50540000000a50540000000908004500001c000000000011a4cd0a0101010a0101020001000200080000";
    let mut v: Vec<u8> = (0..HEX.len() / 2)
        .map(|k| u8::from_str_radix(&HEX[2 * k..2 * k + 2], 16).expect("hex"))
        .collect();
    let sport = 1u16.wrapping_add(tid);
    v[34..36].copy_from_slice(&sport.to_be_bytes());
    if change {
        let dport = 2u16.wrapping_add(i);
        v[36..38].copy_from_slice(&dport.to_be_bytes());
    }
    v
}

/// One thread of OVS's benchmark: its batch of packets and its own table.
pub struct OvsThread {
    frames: Vec<Vec<u8>>,
    ps: Vec<Parsed>,
    table: ConnTable,
}

impl OvsThread {
    /// Prepares thread `tid`'s batch (OVS's `prepare_packets`) and table.
    pub fn new(tid: u16, batch: usize, change: bool) -> Self {
        let frames: Vec<Vec<u8>> = (0..batch)
            .map(|i| ovs_packet(tid, i as u16, change))
            .collect();
        let ps = frames.iter().map(|f| parsed(f)).collect();
        OvsThread {
            frames,
            ps,
            table: ConnTable::new(batch.max(64) * 2, Default::default()),
        }
    }

    /// OVS's loop: `packets` packets in batches, each committed (tracked, and confirmed
    /// when new). Returns packets that ended with an entry.
    pub fn run(&mut self, packets: u64) -> u64 {
        let (t, ps) = (&mut self.table, &mut self.ps);
        let mut ok = 0u64;
        let mut done = 0u64;
        let now = 1_000_000;
        while done < packets {
            // Like conntrack_execute: extract every packet of the batch (and prefetch its
            // bucket), then track and commit each.
            let mut hs = [0u64; 64];
            for (k, f) in self.frames.iter().enumerate() {
                ps[k] = parsed(f);
                hs[k & 63] = t.prefetch(&ps[k]);
            }
            for &h in hs.iter().take(self.frames.len()) {
                t.prefetch_entries(h);
            }
            for (k, f) in self.frames.iter().enumerate() {
                let opts = TrackOpts {
                    // The prefetch hash of this frame (batches of up to 64 keep them all).
                    hash: if self.frames.len() <= 64 { hs[k] } else { 0 },
                    ..Default::default()
                };
                let tr = t.track(f, &ps[k], now, opts);
                let c = !tr.candidate || t.confirm(&tr, true, f, &ps[k], now).is_pass();
                ok += (c && tr.handle.is_some()) as u64;
            }
            done += self.frames.len() as u64;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_establishes_and_data_is_established() {
        let (mut t, failed) = established_table(1024, 100);
        assert_eq!(failed, 0);
        assert_eq!(t.len(), 100);
        let f = data_frames(100);
        for i in 0..100 {
            let o = i * FRAME;
            let tr = track_accept(&mut t, &f[o..o + FRAME], 2_000);
            assert_eq!(tr.state, dataplane::conntrack::CtState::Established);
        }
    }

    #[test]
    fn ovs_packet_parses_and_rulesets_compile() {
        let p = parsed(&ovs_packet(3, 5, true));
        assert_eq!(p.ports(), Some((4, 7)));
        for n in [2, 10, 1000] {
            let rs = dataplane::ruleset::parse_ruleset(&ruleset_text(n, Some(80)), "t", None)
                .expect("compiles");
            assert_eq!(rs.rule_count(), n);
        }
        assert_eq!(OvsThread::new(0, 32, true).run(64), 64);
    }

    #[test]
    fn access_orders_stay_in_range() {
        for p in [Pattern::Uniform, Pattern::Zipf] {
            assert!(access_order(1000, 10_000, p, 1).iter().all(|&i| i < 1000));
        }
    }
}
