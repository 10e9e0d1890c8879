//! LOG: a token bucket per worker and the owned record a LOG event becomes, formatted
//! off the hot path like the kernel's LOG target.

use crate::packet;
use crate::ruleset;
use crate::Nanos;

/// LOG records a worker hands off per second (beyond: counted as lost).
pub const LOG_RATE_PER_SEC: u64 = 200;
/// LOG burst.
pub const LOG_BURST: u64 = 400;

/// A token bucket for LOG records (time passed in; no clock reads).
#[derive(Debug, Clone)]
pub struct LogLimiter {
    tokens: u64,
    last: Nanos,
    rate: u64,
    burst: u64,
}

impl LogLimiter {
    /// `rate` records per second, at most `burst` at once.
    pub fn new(rate: u64, burst: u64) -> Self {
        LogLimiter {
            tokens: burst,
            last: 0,
            rate,
            burst,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn allow(&mut self, now: Nanos) -> bool {
        let elapsed = now.saturating_sub(self.last);
        let add = elapsed.saturating_mul(self.rate) / 1_000_000_000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst);
            self.last = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// An owned, fixed-size copy of a LOG event, formatted off the hot path like the
/// kernel's LOG target (`PREFIX IN=.. OUT=.. SRC=.. DST=.. LEN=.. PROTO=.. SPT=.. DPT=..`).
#[derive(Debug, Clone, Copy)]
pub struct LogRecord {
    /// Rule id.
    pub rule_id: usize,
    /// Syslog level.
    pub level: u8,
    /// The NFLOG / ULOG group (None for LOG).
    pub nflog_group: Option<u16>,
    prefix: [u8; 32],
    prefix_len: u8,
    in_port: [u8; 16],
    in_len: u8,
    out_port: [u8; 16],
    out_len: u8,
    /// The packet summary.
    pub parsed: packet::Parsed,
}

fn copy_str<const N: usize>(s: &str) -> ([u8; N], u8) {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s.as_bytes()[..n]);
    (a, n as u8)
}

impl LogRecord {
    /// Copies what is needed out of a borrowed event (no allocation).
    pub fn from_event(e: &ruleset::LogEvent<'_>) -> Self {
        let (prefix, prefix_len) = copy_str::<32>(e.prefix);
        let (in_port, in_len) = copy_str::<16>(e.in_port);
        let (out_port, out_len) = copy_str::<16>(e.out_port);
        LogRecord {
            rule_id: e.rule_id,
            level: e.level,
            nflog_group: e.nflog_group,
            prefix,
            prefix_len,
            in_port,
            in_len,
            out_port,
            out_len,
            parsed: *e.parsed,
        }
    }
}

impl std::fmt::Display for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let p = &self.parsed;
        write!(
            f,
            "{}IN={} OUT={} SRC={} DST={} LEN={} TTL={} PROTO=",
            s(&self.prefix[..self.prefix_len as usize]),
            s(&self.in_port[..self.in_len as usize]),
            s(&self.out_port[..self.out_len as usize]),
            packet::to_ip(p.family, &p.src),
            packet::to_ip(p.family, &p.dst),
            p.ip_len(),
            p.ttl
        )?;
        match p.l4 {
            packet::L4::Tcp(t) => {
                write!(f, "TCP SPT={} DPT={} WINDOW={}", t.sport, t.dport, t.window)?;
                // The kernel's LOG prints the flags from URG down to FIN.
                for &(bit, name) in packet::tcp_flags::NAMES.iter().rev() {
                    if t.flags & bit != 0 {
                        write!(f, " {name}")?;
                    }
                }
                Ok(())
            }
            packet::L4::Udp(u) => write!(f, "UDP SPT={} DPT={} LEN={}", u.sport, u.dport, u.len),
            packet::L4::Icmp(i) => write!(
                f,
                "{} TYPE={} CODE={} ID={}",
                if i.v6 { "ICMPv6" } else { "ICMP" },
                i.ty,
                i.code,
                i.id
            ),
            _ => write!(f, "{}", p.proto),
        }
    }
}
