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

/// Which command or reply carried a data endpoint (`enum nf_ct_ftp_type`): it decides
/// the text NAT writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FtpCmd {
    /// `PORT a,b,c,d,p,q`.
    Port,
    /// `EPRT |1|a.b.c.d|port|` (or `|2|` IPv6).
    Eprt,
    /// `227 ... a,b,c,d,p,q`.
    Pasv,
    /// `229 ... (|||port|)`.
    Epsv,
}

/// Where the endpoint text of a [`FtpMatch::Found`] lies in the payload (the kernel's
/// `matchoff`/`matchlen`), and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FtpSpan {
    /// The command or reply.
    pub(crate) cmd: FtpCmd,
    /// Offset of the text from the payload's start.
    pub(crate) at: usize,
    /// Its length.
    pub(crate) len: usize,
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
#[cfg(test)]
pub(crate) fn parse(data: &[u8], dir: usize, family: Family, sender: &Addr) -> FtpMatch {
    parse_span(data, dir, family, sender).0
}

/// [`parse`], with the span of the endpoint text of a [`FtpMatch::Found`].
pub(crate) fn parse_span(
    data: &[u8],
    dir: usize,
    family: Family,
    sender: &Addr,
) -> (FtpMatch, Option<FtpSpan>) {
    for s in &SEARCH[dir] {
        match find_pattern(data, s, family, sender) {
            (FtpMatch::None, _) => continue,
            m => return m,
        }
    }
    (FtpMatch::None, None)
}

fn find_pattern(
    data: &[u8],
    s: &Search,
    family: Family,
    sender: &Addr,
) -> (FtpMatch, Option<FtpSpan>) {
    let plen = s.pattern.len();
    let dlen = data.len();
    if dlen <= plen {
        // Short packet: a prefix of the pattern is a partial match.
        let m = if data.eq_ignore_ascii_case(&s.pattern[..dlen]) {
            FtpMatch::Partial
        } else {
            FtpMatch::None
        };
        return (m, None);
    }
    if !data[..plen].eq_ignore_ascii_case(s.pattern) {
        return (FtpMatch::None, None);
    }
    let mut i = plen;
    if s.skip != 0 {
        while data[i] != s.skip {
            if i == dlen - 1 {
                return (FtpMatch::Partial, None);
            }
            i += 1;
        }
        i += 1;
    }
    let mut addr = *sender;
    let rest = &data[i..];
    let (ok, cmd) = match s.getnum {
        GetNum::Rfc959 => (try_rfc959(rest, &mut addr, s.term), FtpCmd::Port),
        GetNum::Rfc1123 => (try_rfc1123(rest, &mut addr), FtpCmd::Pasv),
        GetNum::Eprt => (try_eprt(rest, &mut addr, family), FtpCmd::Eprt),
        GetNum::Epsv => (try_epsv(rest), FtpCmd::Epsv),
    };
    match ok {
        Some((port, off, len)) => (
            FtpMatch::Found { addr, port },
            Some(FtpSpan {
                cmd,
                at: i + off,
                len,
            }),
        ),
        None => (FtpMatch::Partial, None),
    }
}

/// The text NAT writes in place of a [`FtpSpan`] (`nf_nat_ftp_fmt_cmd`): the
/// translated address and port in the command's own syntax (IPv6 in EPRT as the
/// kernel's `%pI6` prints it: eight groups of four hex digits). Returns the length
/// written into `out`.
pub(crate) fn format_cmd(
    cmd: FtpCmd,
    family: Family,
    addr: &Addr,
    port: u16,
    out: &mut [u8; 64],
) -> usize {
    use std::io::Write as _;
    let mut c = std::io::Cursor::new(&mut out[..]);
    let a = addr;
    // A 64-byte buffer holds the longest text (49 bytes): the writes cannot fail.
    let _ = match (cmd, family) {
        (FtpCmd::Port | FtpCmd::Pasv, _) => write!(
            c,
            "{},{},{},{},{},{}",
            a[0],
            a[1],
            a[2],
            a[3],
            port >> 8,
            port & 0xff
        ),
        (FtpCmd::Eprt, Family::V4) => {
            write!(c, "|1|{}.{}.{}.{}|{port}|", a[0], a[1], a[2], a[3])
        }
        (FtpCmd::Eprt, Family::V6) => {
            let g = |i: usize| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
            write!(
                c,
                "|2|{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}|{port}|",
                g(0),
                g(1),
                g(2),
                g(3),
                g(4),
                g(5),
                g(6),
                g(7)
            )
        }
        (FtpCmd::Epsv, _) => write!(c, "|||{port}|"),
    };
    c.position() as usize
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

/// The getnum functions return (port, offset of the endpoint text, its length).
fn try_rfc959(data: &[u8], addr: &mut Addr, term: u8) -> Option<(u16, usize, usize)> {
    let mut a = [0u32; 6];
    let len = try_number(data, &mut a, b',', term)?;
    let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
    addr[..4].copy_from_slice(&ip.to_be_bytes());
    Some((((a[4] << 8) | a[5]) as u16, 0, len))
}

fn try_rfc1123(data: &[u8], addr: &mut Addr) -> Option<(u16, usize, usize)> {
    let i = data.iter().position(|c| c.is_ascii_digit())?;
    let (port, _, len) = try_rfc959(&data[i..], addr, 0)?;
    Some((port, i, len))
}

fn is_delim(c: u8) -> bool {
    !c.is_ascii_digit() && (33..=126).contains(&c)
}

/// `get_port`: digits from `start` up to `delim`, non-zero (16-bit wrapping); with the
/// length of the text from the start of `data` through the closing delimiter.
fn get_port(data: &[u8], start: usize, delim: u8) -> Option<(u16, usize, usize)> {
    let mut port: u16 = 0;
    for (i, &c) in data.get(start..)?.iter().enumerate() {
        if c == delim {
            return (port != 0).then_some((port, 0, start + i + 1));
        } else if c.is_ascii_digit() {
            port = port.wrapping_mul(10).wrapping_add((c - b'0') as u16);
        } else {
            return None;
        }
    }
    None
}

fn try_eprt(data: &[u8], addr: &mut Addr, family: Family) -> Option<(u16, usize, usize)> {
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

fn try_epsv(data: &[u8]) -> Option<(u16, usize, usize)> {
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
    fn ftp_spans_are_the_kernels_matchoff_matchlen() {
        let c = v4([10, 0, 0, 1]);
        let f = Family::V4;
        let span = |d: &[u8], dir: usize| {
            let (_, s) = parse_span(d, dir, f, &c);
            let s = s.expect("found");
            (
                s.cmd,
                std::str::from_utf8(&d[s.at..s.at + s.len])
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(
            span(b"PORT 10,0,0,1,156,64\r\n", 0),
            (FtpCmd::Port, "10,0,0,1,156,64".into())
        );
        assert_eq!(
            span(b"EPRT |1|10.0.0.1|6275|\r\n", 0),
            (FtpCmd::Eprt, "|1|10.0.0.1|6275|".into())
        );
        assert_eq!(
            span(b"227 Entering Passive Mode (10,0,0,1,195,80).\r\n", 1),
            (FtpCmd::Pasv, "10,0,0,1,195,80".into())
        );
        assert_eq!(
            span(b"229 Entering Extended Passive Mode (|||6446|)\r\n", 1),
            (FtpCmd::Epsv, "|||6446|".into())
        );
        assert_eq!(
            parse_span(b"PORT x\r\n", 0, f, &c),
            (FtpMatch::Partial, None)
        );
    }

    #[test]
    fn ftp_nat_text_as_the_kernel_prints_it() {
        let mut out = [0u8; 64];
        let a = v4([198, 51, 100, 1]);
        let mut t = |cmd, fam, a: &Addr, port| {
            let n = format_cmd(cmd, fam, a, port, &mut out);
            String::from_utf8(out[..n].to_vec()).unwrap()
        };
        assert_eq!(
            t(FtpCmd::Port, Family::V4, &a, 40001),
            "198,51,100,1,156,65"
        );
        assert_eq!(t(FtpCmd::Pasv, Family::V4, &a, 80), "198,51,100,1,0,80");
        assert_eq!(
            t(FtpCmd::Eprt, Family::V4, &a, 6275),
            "|1|198.51.100.1|6275|"
        );
        assert_eq!(t(FtpCmd::Epsv, Family::V4, &a, 65535), "|||65535|");
        let a6: Addr = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(
            t(FtpCmd::Eprt, Family::V6, &a6, 6275),
            "|2|2001:0db8:0000:0000:0000:0000:0000:0001|6275|"
        );
        let m6 = [0xffu8; 16];
        assert_eq!(t(FtpCmd::Eprt, Family::V6, &m6, 65535).len(), 49);
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
