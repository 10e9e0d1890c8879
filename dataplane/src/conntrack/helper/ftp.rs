//! The FTP helper's parser and per-connection state (`nf_conntrack_ftp.c`, `docs/CONNTRACK.md` §4.2).
//!
//! Sans-IO: [`parse`] looks at the start of one payload and says what the kernel's
//! `find_pattern` would; [`FtpSeq`] is the helper's `seq_aft_nl` memory (up to 2 sequence
//! numbers per direction that follow a segment ending in `\n`). The table
//! ([`super::ConnTable::confirm`]) glues them to expectations.

use crate::packet::{Addr, Family};

/// Sequence numbers remembered per direction (`NUM_SEQ_TO_REMEMBER`).
const NUM_SEQ: usize = 2;

/// The helper's per-connection state: `seq_aft_nl[dir][2]` and `seq_aft_nl_num[dir]`.
/// Kept in a side array indexed by slot (20 bytes), so the 64-byte entry is untouched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FtpSeq {
    seq: [[u32; NUM_SEQ]; 2],
    num: [u8; 2],
}

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl FtpSeq {
    /// `find_nl_seq`: is `seq` one of the remembered line starts of direction `dir`?
    pub(crate) fn at_line_start(&self, dir: usize, seq: u32) -> bool {
        self.seq[dir][..self.num[dir] as usize].contains(&seq)
    }

    /// `update_nl_seq`: remember `nl_seq` (the seq after a segment ending in `\n`);
    /// when full, replace the oldest if `nl_seq` is after it.
    pub(crate) fn remember(&mut self, dir: usize, nl_seq: u32) {
        let n = self.num[dir] as usize;
        if self.seq[dir][..n].contains(&nl_seq) {
            return;
        }
        if n < NUM_SEQ {
            self.seq[dir][n] = nl_seq;
            self.num[dir] += 1;
        } else {
            let s = &mut self.seq[dir];
            let oldest = if before(s[0], s[1]) { 0 } else { 1 };
            if before(s[oldest], nl_seq) {
                s[oldest] = nl_seq;
            }
        }
    }
}

/// What the kernel's `find_pattern` loop concluded for one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FtpMatch {
    /// No command/reply prefix: accept.
    None,
    /// The prefix matched but what follows did not parse: DROP ("partial matching").
    Partial,
    /// A data endpoint: the address in the text (or the sender's for EPSV) and port.
    Found {
        /// Parsed address (IPv4 in bytes 0..4).
        addr: Addr,
        /// Parsed port.
        port: u16,
    },
}

#[derive(Clone, Copy)]
enum GetNum {
    Rfc959,
    Eprt,
    Rfc1123,
    Epsv,
}

struct Search {
    pattern: &'static [u8],
    skip: u8,
    term: u8,
    getnum: GetNum,
}

/// `search[dir][]` of nf_conntrack_ftp.c: ORIGINAL (client) then REPLY (server).
const SEARCH: [[Search; 2]; 2] = [
    [
        Search {
            pattern: b"PORT",
            skip: b' ',
            term: b'\r',
            getnum: GetNum::Rfc959,
        },
        Search {
            pattern: b"EPRT",
            skip: b' ',
            term: b'\r',
            getnum: GetNum::Eprt,
        },
    ],
    [
        Search {
            pattern: b"227 ",
            skip: 0,
            term: 0,
            getnum: GetNum::Rfc1123,
        },
        Search {
            pattern: b"229 ",
            skip: b'(',
            term: b')',
            getnum: GetNum::Epsv,
        },
    ],
];

/// Parses one payload sent in direction `dir` (0 = ORIGINAL, 1 = REPLY) of a
/// connection of `family` whose sender is `sender`.
pub(crate) fn parse(data: &[u8], dir: usize, family: Family, sender: &Addr) -> FtpMatch {
    for s in &SEARCH[dir] {
        match find_pattern(data, s, family, sender) {
            FtpMatch::None => continue,
            m => return m,
        }
    }
    FtpMatch::None
}

fn find_pattern(data: &[u8], s: &Search, family: Family, sender: &Addr) -> FtpMatch {
    let plen = s.pattern.len();
    let dlen = data.len();
    if dlen <= plen {
        // Short packet: a prefix of the pattern is a partial match.
        return if data.eq_ignore_ascii_case(&s.pattern[..dlen]) {
            FtpMatch::Partial
        } else {
            FtpMatch::None
        };
    }
    if !data[..plen].eq_ignore_ascii_case(s.pattern) {
        return FtpMatch::None;
    }
    let mut i = plen;
    if s.skip != 0 {
        while data[i] != s.skip {
            if i == dlen - 1 {
                return FtpMatch::Partial;
            }
            i += 1;
        }
        i += 1;
    }
    let mut addr = *sender;
    let rest = &data[i..];
    let ok = match s.getnum {
        GetNum::Rfc959 => try_rfc959(rest, &mut addr, s.term),
        GetNum::Rfc1123 => try_rfc1123(rest, &mut addr),
        GetNum::Eprt => try_eprt(rest, &mut addr, family),
        GetNum::Epsv => try_epsv(rest),
    };
    match ok {
        Some(port) => FtpMatch::Found { addr, port },
        None => FtpMatch::Partial,
    }
}

/// `try_number`: `n` decimal numbers separated by `sep`, ended by `term` (or by any
/// other character when `term` is 0). Returns the length consumed (up to the terminator).
fn try_number(data: &[u8], out: &mut [u32], sep: u8, term: u8) -> Option<usize> {
    out.iter_mut().for_each(|x| *x = 0);
    let n = out.len();
    let mut i = 0;
    for (len, &c) in data.iter().enumerate() {
        if i >= n {
            break;
        }
        if c.is_ascii_digit() {
            out[i] = out[i].wrapping_mul(10).wrapping_add((c - b'0') as u32);
        } else if c == sep {
            i += 1;
        } else {
            return ((c == term || term == 0) && i == n - 1).then_some(len);
        }
    }
    None
}

fn try_rfc959(data: &[u8], addr: &mut Addr, term: u8) -> Option<u16> {
    let mut a = [0u32; 6];
    try_number(data, &mut a, b',', term)?;
    let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
    addr[..4].copy_from_slice(&ip.to_be_bytes());
    Some(((a[4] << 8) | a[5]) as u16)
}

fn try_rfc1123(data: &[u8], addr: &mut Addr) -> Option<u16> {
    let i = data.iter().position(|c| c.is_ascii_digit())?;
    try_rfc959(&data[i..], addr, 0)
}

fn is_delim(c: u8) -> bool {
    !c.is_ascii_digit() && (33..=126).contains(&c)
}

/// `get_port`: digits from `start` up to `delim`, non-zero (16-bit wrapping).
fn get_port(data: &[u8], start: usize, delim: u8) -> Option<u16> {
    let mut port: u16 = 0;
    for &c in data.get(start..)? {
        if c == delim {
            return (port != 0).then_some(port);
        } else if c.is_ascii_digit() {
            port = port.wrapping_mul(10).wrapping_add((c - b'0') as u16);
        } else {
            return None;
        }
    }
    None
}

fn try_eprt(data: &[u8], addr: &mut Addr, family: Family) -> Option<u16> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !is_delim(delim) || data[2] != delim {
        return None;
    }
    match (family, data[1]) {
        (Family::V4, b'1') => {
            let mut a = [0u32; 4];
            let len = try_number(&data[3..], &mut a, b'.', delim)?;
            let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
            addr[..4].copy_from_slice(&ip.to_be_bytes());
            get_port(data, 3 + len + 1, delim)
        }
        (Family::V6, b'2') => {
            let rest = &data[3..];
            // in6_pton: the address ends at the delimiter (or at the end of the data).
            let len = rest.iter().position(|&c| c == delim).unwrap_or(rest.len());
            let text = std::str::from_utf8(&rest[..len]).ok()?;
            let ip: std::net::Ipv6Addr = text.parse().ok()?;
            *addr = ip.octets();
            get_port(data, 3 + len + 1, delim)
        }
        _ => None,
    }
}

fn try_epsv(data: &[u8]) -> Option<u16> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !is_delim(delim) || data[1] != delim || data[2] != delim {
        return None;
    }
    get_port(data, 3, delim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&a);
        x
    }

    #[test]
    fn ftp_parse_forms() {
        let c = v4([10, 0, 0, 1]);
        let s = v4([10, 0, 0, 2]);
        let f = Family::V4;
        assert_eq!(
            parse(b"PORT 10,0,0,1,156,64\r\n", 0, f, &c),
            FtpMatch::Found {
                addr: c,
                port: 40000
            }
        );
        assert_eq!(
            parse(b"port 10,0,0,1,156,64\r\n", 0, f, &c),
            FtpMatch::Found {
                addr: c,
                port: 40000
            }
        );
        assert_eq!(
            parse(b"EPRT |1|10.0.0.1|6275|\r\n", 0, f, &c),
            FtpMatch::Found {
                addr: c,
                port: 6275
            }
        );
        assert_eq!(
            parse(
                b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n",
                1,
                f,
                &s
            ),
            FtpMatch::Found {
                addr: s,
                port: 50000
            }
        );
        assert_eq!(
            parse(b"227 =10,0,0,2,195,80\r\n", 1, f, &s),
            FtpMatch::Found {
                addr: s,
                port: 50000
            }
        );
        assert_eq!(
            parse(
                b"229 Entering Extended Passive Mode (|||6446|)\r\n",
                1,
                f,
                &s
            ),
            FtpMatch::Found {
                addr: s,
                port: 6446
            }
        );
        // Partial matches.
        assert_eq!(parse(b"POR", 0, f, &c), FtpMatch::Partial);
        assert_eq!(parse(b"PORT", 0, f, &c), FtpMatch::Partial);
        assert_eq!(parse(b"PORT abc\r\n", 0, f, &c), FtpMatch::Partial);
        assert_eq!(parse(b"PORTX\r\n", 0, f, &c), FtpMatch::Partial); // no space
        assert_eq!(parse(b"PORT 1,2,3,4,5\r\n", 0, f, &c), FtpMatch::Partial);
        assert_eq!(
            parse(b"PORT 1,2,3,4,5,6,7\r\n", 0, f, &c),
            FtpMatch::Partial
        );
        assert_eq!(parse(b"PORT 1,2,3,4,5,6\n", 0, f, &c), FtpMatch::Partial);
        assert_eq!(parse(b"EPRT |2|::1|6275|\r\n", 0, f, &c), FtpMatch::Partial);
        assert_eq!(
            parse(b"EPRT |1|10.0.0.1|0|\r\n", 0, f, &c),
            FtpMatch::Partial
        );
        assert_eq!(parse(b"229 (||6446|)\r\n", 1, f, &s), FtpMatch::Partial);
        assert_eq!(parse(b"227 no numbers\r\n", 1, f, &s), FtpMatch::Partial);
        // No match.
        assert_eq!(parse(b"USER a\r\n", 0, f, &c), FtpMatch::None);
        assert_eq!(parse(b"227 ", 0, f, &c), FtpMatch::None); // client side
        assert_eq!(parse(b"PORT 1,2,3,4,5,6\r\n", 1, f, &s), FtpMatch::None);
        assert_eq!(parse(b"22", 0, f, &c), FtpMatch::None);
        // Short reply-side prefix is partial.
        assert_eq!(parse(b"22", 1, f, &s), FtpMatch::Partial);
        // No range checks: numbers accumulate, the port keeps 16 bits.
        assert_eq!(
            parse(b"PORT 10,0,0,1,256,1\r\n", 0, f, &c),
            FtpMatch::Found { addr: c, port: 1 }
        );
        // IPv6.
        let c6: Addr = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(
            parse(b"EPRT |2|2001:db8::1|6275|\r\n", 0, Family::V6, &c6),
            FtpMatch::Found {
                addr: c6,
                port: 6275
            }
        );
        assert_eq!(
            parse(b"EPRT |1|10.0.0.1|6275|\r\n", 0, Family::V6, &c6),
            FtpMatch::Partial
        );
    }

    #[test]
    fn ftp_seq_memory() {
        let mut s = FtpSeq::default();
        assert!(!s.at_line_start(0, 100));
        s.remember(0, 100);
        s.remember(0, 200);
        assert!(s.at_line_start(0, 100) && s.at_line_start(0, 200));
        assert!(!s.at_line_start(1, 100));
        s.remember(0, 300); // replaces the oldest (100)
        assert!(!s.at_line_start(0, 100));
        assert!(s.at_line_start(0, 200) && s.at_line_start(0, 300));
        s.remember(0, 50); // older than both: ignored
        assert!(!s.at_line_start(0, 50));
    }
}
