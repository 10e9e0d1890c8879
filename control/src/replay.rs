//! `statewall replay`: runs a capture through one worker's pipeline — the same
//! [`Pipeline::process`] the poll loop uses — with the capture's timestamps, and prints
//! every packet's conntrack state, direction, TCP state and verdict.

use anyhow::{Context, Result};
use dataplane::conntrack::{ConnTable, CtState, Direction, Track};
use dataplane::packet::{self, to_ip, Frame, Parsed, L4};
use dataplane::port::pcap::PcapPort;
use dataplane::port::{Mbuf, MbufPool, Port};
use dataplane::ruleset::{Ruleset, Verdict};
use dataplane::worker::{
    apply_mangle, apply_nat, Action, Burst, NatAddrs, NonIpPolicy, Outcome, PairMode, PairView,
    Pipeline, Side,
};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

/// Arguments of `statewall replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Capture to read (pcap, Ethernet).
    #[arg(long)]
    pub pcap: PathBuf,
    /// Rules file (iptables-restore text). Without it every chain accepts.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// `ipset save` files the rules' `-m set`/`-j SET` name (repeatable); `-j SET`
    /// changes are applied after each packet, at its time.
    #[arg(long = "sets")]
    pub sets: Vec<PathBuf>,
    /// Write the forwarded packets (and REJECT replies) to this capture.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "jsonl"])]
    pub format: String,
    /// Pair mode: "forward" runs FORWARD; "host" runs INPUT/OUTPUT.
    #[arg(long, default_value = "forward", value_parser = ["forward", "host"])]
    pub mode: String,
    /// Source prefixes that sit behind the host/inside port (e.g. 10.0.0.1/32); packets
    /// from them enter on the host side. Others enter on the network side.
    #[arg(long = "inside", value_name = "CIDR")]
    pub inside: Vec<String>,
    /// Conntrack table capacity.
    #[arg(long, default_value_t = 65536)]
    pub capacity: usize,
    /// Linux sysctls, e.g. `--sysctl nf_conntrack_tcp_loose=0` (repeatable).
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctls: Vec<String>,
    /// Attach the FTP helper to connections to these ports (like `-j CT --helper ftp`).
    #[arg(long = "ftp-port")]
    pub ftp_ports: Vec<u16>,
    /// The outside port's own address, for MASQUERADE (repeatable: one IPv4, one IPv6).
    #[arg(long = "masquerade-addr", value_name = "IP")]
    pub masquerade_addrs: Vec<IpAddr>,
    /// The host's local address, for REDIRECT (repeatable: one IPv4, one IPv6).
    #[arg(long = "local-addr", value_name = "IP")]
    pub local_addrs: Vec<IpAddr>,
}

/// The NAT addresses of `--masquerade-addr` and `--local-addr` (at most one per family
/// each).
fn nat_addrs(args: &ReplayArgs) -> Result<NatAddrs> {
    let mut a = NatAddrs::default();
    let put = |slot: &mut Option<packet::Addr>, ip: &IpAddr, opt: &str| -> Result<()> {
        if slot.is_some() {
            anyhow::bail!("{opt} {ip}: one address per family (one IPv4, one IPv6)");
        }
        *slot = Some(packet::from_ip(*ip).1);
        Ok(())
    };
    for (ips, (v4, v6), opt) in [
        (
            &args.masquerade_addrs,
            (&mut a.masquerade_v4, &mut a.masquerade_v6),
            "--masquerade-addr",
        ),
        (
            &args.local_addrs,
            (&mut a.local_v4, &mut a.local_v6),
            "--local-addr",
        ),
    ] {
        for ip in ips {
            put(if ip.is_ipv4() { &mut *v4 } else { &mut *v6 }, ip, opt)?;
        }
    }
    Ok(a)
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = a
        .parse()
        .with_context(|| format!("--inside {s}: bad address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|x| *x <= max)
            .with_context(|| format!("--inside {s}: bad prefix length"))?,
        None => max,
    };
    Ok((ip, len))
}

fn in_prefix(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// Large buffers: captures may hold frames up to 64 KiB.
const REPLAY_MBUF: usize = 65536 + 256;

/// Reads every frame of a capture through the pcap port (timestamps in ns).
pub fn read_all(path: &std::path::Path) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut port = PcapPort::reader(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pool = MbufPool::with_size(64, REPLAY_MBUF);
    let mut burst = Vec::with_capacity(32);
    let mut out = Vec::new();
    loop {
        let n = port.rx_burst(0, &mut pool, &mut burst, 32);
        for m in burst.drain(..) {
            out.push((m.timestamp, m.data().to_vec()));
            pool.put(m);
        }
        if n == 0 && port.rx_done() {
            break;
        }
    }
    if let Some(e) = port.take_error() {
        return Err(e).with_context(|| format!("reading {}", path.display()));
    }
    Ok(out)
}

/// Writes frames to a capture through the pcap port.
struct CaptureOut {
    port: PcapPort,
    pool: MbufPool,
    burst: Vec<Mbuf>,
}

impl CaptureOut {
    fn create(path: &std::path::Path) -> Result<Self> {
        Ok(CaptureOut {
            port: PcapPort::writer(path).with_context(|| format!("creating {}", path.display()))?,
            pool: MbufPool::with_size(4, REPLAY_MBUF),
            burst: Vec::with_capacity(1),
        })
    }

    fn write(&mut self, ts: u64, frame: &[u8]) -> Result<()> {
        let mut m = self.pool.get().context("replay: no buffer")?;
        m.copy_from(frame);
        m.timestamp = ts.max(1);
        self.burst.push(m);
        self.port.tx_burst(0, &mut self.burst, &mut self.pool);
        self.pool.put_all(&mut self.burst);
        if let Some(e) = self.port.take_error() {
            return Err(e.into());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.port.flush()?)
    }
}

/// A short tcpdump-like summary of a frame.
pub fn summary(frame: &[u8]) -> String {
    match packet::parse(frame) {
        Ok(Frame::NonIp(et)) => format!("ethertype {et:#06x}"),
        Err(e) => format!("malformed: {e}"),
        Ok(Frame::Ip(p)) => summary_parsed(&p),
    }
}

fn summary_parsed(p: &Parsed) -> String {
    let s = to_ip(p.family, &p.src);
    let d = to_ip(p.family, &p.dst);
    let frag = if p.frag.is_fragment() {
        format!(" frag(off={} mf={})", p.frag.offset * 8, p.frag.more as u8)
    } else {
        String::new()
    };
    let body = match p.l4 {
        L4::Tcp(t) => {
            let mut f = String::new();
            for (bit, c) in [
                (0x02, 'S'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x08, 'P'),
                (0x20, 'U'),
                (0x10, '.'),
            ] {
                if t.flags & bit != 0 {
                    f.push(c);
                }
            }
            format!(
                "TCP {s}.{} > {d}.{} [{f}] seq={} ack={} win={} len={}",
                t.sport, t.dport, t.seq, t.ack, t.window, t.payload_len
            )
        }
        L4::Udp(u) if p.proto == dataplane::packet::proto::UDPLITE => {
            format!("UDP-Lite {s}.{} > {d}.{} cov={}", u.sport, u.dport, u.len)
        }
        L4::Udp(u) => format!(
            "UDP {s}.{} > {d}.{} len={}",
            u.sport,
            u.dport,
            u.len.saturating_sub(8)
        ),
        L4::Sctp(c) => format!("SCTP {s}.{} > {d}.{} vtag={:#x}", c.sport, c.dport, c.vtag),
        L4::Icmp(i) => format!(
            "{} {s} > {d} type={} code={} id={}",
            if i.v6 { "ICMPv6" } else { "ICMP" },
            i.ty,
            i.code,
            i.id
        ),
        L4::Other => format!("proto {} {s} > {d}", p.proto),
        L4::Fragment => format!("proto {} {s} > {d}", p.proto),
        L4::Malformed(e) => format!("proto {} {s} > {d} malformed: {e}", p.proto),
    };
    body + &frag
}

/// The conntrack state name as `-m state` spells it.
pub fn state_name(s: CtState) -> &'static str {
    dataplane::worker::STATE_NAMES[dataplane::worker::state_index(s)]
}

fn verdict_name(o: &Outcome) -> &'static str {
    match (o.verdict, o.action) {
        (_, Action::Held(_)) => "HELD",
        // Replay runs one worker, which owns everything; shown for completeness.
        (_, Action::HandOff(_)) => "HANDOFF",
        (Some(Verdict::Accept), Action::Forward) => "ACCEPT",
        (Some(Verdict::Accept), Action::Drop(_)) => "DROP",
        (Some(Verdict::Drop), _) => "DROP",
        (Some(Verdict::Reject(_)), _) => "REJECT",
        (None, Action::Forward) => "PASS",
        (None, Action::Drop(_)) => "DROP",
    }
}

fn reason(o: &Outcome) -> Option<String> {
    if let Some(e) = o.parse_error {
        return Some(format!("malformed: {e}"));
    }
    let mut r = Vec::new();
    if let Some(t) = o.track {
        if let Some(ir) = t.reason {
            r.push(ir.as_str().to_string());
        }
    }
    if let Action::Drop(d) = o.action {
        r.push(d.as_str().to_string());
    }
    (!r.is_empty()).then(|| r.join(","))
}

fn dir_name(t: &Track) -> Option<&'static str> {
    match t.state {
        CtState::Invalid | CtState::Untracked => None,
        _ => Some(match t.dir {
            Direction::Original => "ORIGINAL",
            Direction::Reply => "REPLY",
        }),
    }
}

/// Runs the replay, writing one line per packet to `out`.
pub fn replay(args: &ReplayArgs, out: &mut dyn Write) -> Result<()> {
    let sets = dataplane::sets::SetRegistry::new();
    for p in &args.sets {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("--sets {}: {e}", p.display()))?;
        sets.restore(&text, &p.display().to_string(), 0, false)
            .map_err(|e| anyhow::anyhow!("--sets: {e}"))?;
    }
    let mut rs = match &args.rules {
        Some(p) => Ruleset::from_file_with_sets(p, &sets).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Ruleset::accept_all(),
    };
    // The addresses given are the host's own (`-m addrtype --dst-type LOCAL`).
    let own: Vec<IpAddr> = args
        .masquerade_addrs
        .iter()
        .chain(&args.local_addrs)
        .copied()
        .collect();
    rs.set_local_addrs(&own);
    let mut cfg = dataplane::conntrack::Config::default();
    for s in &args.sysctls {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--sysctl {s}: expected NAME=VALUE"))?;
        // Config::set takes the name with or without `net.netfilter.nf_conntrack_`.
        cfg.set(k, v)
            .map_err(|e| anyhow::anyhow!("--sysctl {s}: {e}"))?;
    }
    let inside: Vec<(IpAddr, u8)> = args
        .inside
        .iter()
        .map(|s| parse_cidr(s))
        .collect::<Result<_>>()?;
    let mode = if args.mode == "host" {
        PairMode::Host
    } else {
        PairMode::Forward
    };
    let table = ConnTable::new(args.capacity, cfg);
    let mut pl = Pipeline::new(table, &rs, NonIpPolicy::PassArp);
    pl.set_ftp_ports(args.ftp_ports.clone());
    pl.set_nat_addrs(nat_addrs(args)?);
    let view = PairView {
        mode,
        network: "outside",
        host: "inside",
    };
    let packets = read_all(&args.pcap)?;
    let mut writer = match &args.out {
        Some(p) => Some(CaptureOut::create(p)?),
        None => None,
    };
    let jsonl = args.format == "jsonl";
    if !jsonl {
        writeln!(
            out,
            "{:>5} {:>12}  {:<11} {:<8} {:<11} {:<7} {:<24} summary",
            "#", "time", "state", "dir", "tcp_state", "verdict", "reason"
        )?;
    }
    let t0 = packets.first().map(|p| p.0).unwrap_or(0);
    let mut reply = vec![0u8; 2048];
    // Indices of the fragments held per reassembly slot (for --out).
    let mut held: Vec<Vec<usize>> = vec![Vec::new(); dataplane::worker::DEFRAG_SLOTS];
    let mut log = |_e: dataplane::ruleset::LogEvent| {};
    for (i, (ts, frame)) in packets.iter().enumerate() {
        let ingress = match packet::parse(frame) {
            Ok(Frame::Ip(p))
                if inside
                    .iter()
                    .any(|n| in_prefix(to_ip(p.family, &p.src), *n)) =>
            {
                Side::Host
            }
            _ => Side::Network,
        };
        let o = pl.process(
            &mut Burst::new(&rs, view, ingress, *ts, &mut log),
            frame,
            &mut reply,
        );
        // The kernel's SET target changes the set before the next packet.
        sets.drain(*ts);
        if let Some(slot) = o.discard {
            held[slot].clear();
        }
        if let Action::Held(slot) = o.action {
            held[slot].push(i);
        }
        if let Some(w) = writer.as_mut() {
            if o.action == Action::Forward {
                // NAT rewrites the frames that go out (a copy: the capture stays).
                let nat = o.nat.and_then(|r| r.resolve(pl.table()));
                let nat = match (nat, o.completes) {
                    (Some(n), Some(_)) => Some(n.for_fragment()),
                    (n, _) => n,
                };
                // None: `run` would drop it (the helper's rewrite found no room, or
                // malformed options under sequence adjustment).
                let translated = |f: &[u8]| -> Option<Vec<u8>> {
                    let mut v = f.to_vec();
                    if let Some(n) = nat {
                        let len = v.len();
                        // Room for a payload rewrite that grows the frame.
                        v.resize(len + 64, 0);
                        match apply_nat(&mut v, len, &n) {
                            Some(l) => v.truncate(l),
                            None if n.mangle.is_some() || n.seq.is_some() => return None,
                            None => v.truncate(len),
                        }
                    }
                    // The mangle targets' header edits (TCPMSS, DSCP, TOS, ...), after NAT.
                    apply_mangle(&mut v, &o.mangle);
                    Some(v)
                };
                if let Some(slot) = o.completes {
                    for &j in &held[slot] {
                        if let Some(v) = translated(&packets[j].1) {
                            w.write(packets[j].0, &v)?;
                        }
                    }
                }
                if let Some(v) = translated(frame) {
                    w.write(*ts, &v)?;
                }
            }
            if o.reply_len > 0 {
                w.write(*ts, &reply[..o.reply_len])?;
            }
        }
        if let Some(slot) = o.completes {
            held[slot].clear();
        }
        let state = o.track.map(|t| state_name(t.state));
        let dir = o.track.as_ref().and_then(dir_name);
        let tcp = o.track.and_then(|t| t.tcp_state).map(|s| s.to_string());
        let rel = (*ts as f64 - t0 as f64) / 1e9;
        if jsonl {
            let v = serde_json::json!({
                "index": i,
                "time": rel,
                "summary": summary(frame),
                "ct_state": state,
                "ct_dir": dir,
                "tcp_state": tcp,
                "verdict": verdict_name(&o),
                "reason": reason(&o),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:>5} {:>12.6}  {:<11} {:<8} {:<11} {:<7} {:<24} {}",
                i,
                rel,
                state.unwrap_or("-"),
                dir.unwrap_or("-"),
                tcp.as_deref().unwrap_or("-"),
                verdict_name(&o),
                reason(&o).unwrap_or_default(),
                summary(frame)
            )?;
        }
    }
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    Ok(())
}
