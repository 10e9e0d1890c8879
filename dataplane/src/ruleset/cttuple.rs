//! `-m conntrack`'s tuple options: `--ctorigsrc`, `--ctorigdst`, `--ctreplsrc`,
//! `--ctrepldst` (`[!] address[/mask]`) and `--ctorigsrcport`, `--ctorigdstport`,
//! `--ctreplsrcport`, `--ctrepldstport` (`[!] port[:port]`), in every table. They test
//! the connection's ORIGINAL and REPLY tuples, which differ from each other's
//! inversion only for a NATed connection ([`PacketCtx::ct_tuples`]).

use super::{Net, PacketCtx};
use crate::conntrack::{Direction, NatTuple};
use crate::packet::{Parsed, L4};

/// Which tuple field an option tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CtField {
    OrigSrc,
    OrigDst,
    ReplSrc,
    ReplDst,
    OrigSrcPort,
    OrigDstPort,
    ReplSrcPort,
    ReplDstPort,
}

impl CtField {
    /// The option's name.
    pub(crate) fn option(self) -> &'static str {
        match self {
            CtField::OrigSrc => "--ctorigsrc",
            CtField::OrigDst => "--ctorigdst",
            CtField::ReplSrc => "--ctreplsrc",
            CtField::ReplDst => "--ctrepldst",
            CtField::OrigSrcPort => "--ctorigsrcport",
            CtField::OrigDstPort => "--ctorigdstport",
            CtField::ReplSrcPort => "--ctreplsrcport",
            CtField::ReplDstPort => "--ctrepldstport",
        }
    }

    /// The field of an option name.
    pub(crate) fn of(opt: &str) -> Option<CtField> {
        Some(match opt {
            "--ctorigsrc" => CtField::OrigSrc,
            "--ctorigdst" => CtField::OrigDst,
            "--ctreplsrc" => CtField::ReplSrc,
            "--ctrepldst" => CtField::ReplDst,
            "--ctorigsrcport" => CtField::OrigSrcPort,
            "--ctorigdstport" => CtField::OrigDstPort,
            "--ctreplsrcport" => CtField::ReplSrcPort,
            "--ctrepldstport" => CtField::ReplDstPort,
            _ => return None,
        })
    }

    /// True for the port options.
    pub(crate) fn is_port(self) -> bool {
        matches!(
            self,
            CtField::OrigSrcPort
                | CtField::OrigDstPort
                | CtField::ReplSrcPort
                | CtField::ReplDstPort
        )
    }
}

/// One tuple test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CtTupleMatch {
    pub field: CtField,
    /// For the address options.
    pub net: Net,
    /// For the port options (inclusive).
    pub ports: (u16, u16),
    pub neg: bool,
}

/// The connection's (ORIGINAL, REPLY) tuples as the rules see them.
#[inline]
fn tuples(ctx: &PacketCtx) -> (NatTuple, NatTuple) {
    if let Some(t) = ctx.ct_tuples {
        return *t;
    }
    let p: &Parsed = ctx.parsed;
    let (sport, dport) = match p.l4 {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        L4::Icmp(i) if !i.is_error() => (i.id, i.id),
        _ => (0, 0),
    };
    let t = NatTuple {
        src: p.src,
        dst: p.dst,
        sport,
        dport,
    };
    let orig = if ctx.ct_dir == Direction::Original {
        t
    } else {
        t.invert()
    };
    (orig, orig.invert())
}

/// True when every test in `ms` passes for the packet's connection.
pub(crate) fn all_match(ms: &[CtTupleMatch], ctx: &PacketCtx) -> bool {
    let (o, r) = tuples(ctx);
    ms.iter().all(|m| {
        let a = |x: &crate::packet::Addr| u128::from_be_bytes(*x) & m.net.mask == m.net.net;
        let p = |x: u16| x >= m.ports.0 && x <= m.ports.1;
        let hit = match m.field {
            CtField::OrigSrc => a(&o.src),
            CtField::OrigDst => a(&o.dst),
            CtField::ReplSrc => a(&r.src),
            CtField::ReplDst => a(&r.dst),
            CtField::OrigSrcPort => p(o.sport),
            CtField::OrigDstPort => p(o.dport),
            CtField::ReplSrcPort => p(r.sport),
            CtField::ReplDstPort => p(r.dport),
        };
        hit != m.neg
    })
}
