//! The packet an ICMP/ICMPv6 error quotes: the connection such an error belongs to.
//!
//! Linux looks an error up by the tuple of the packet it quotes (inverted), not by its
//! own: conntrack labels it RELATED to that flow, and steering sends it to the worker
//! owning that flow. Both ask this module.

use super::{parse_embedded, Parsed, L4};

/// The packet whose connection `p` belongs to, when it is not `p` itself: the packet an
/// ICMP/ICMPv6 error quotes (None for every other packet, and for an error whose quote
/// cannot be parsed: such an error is INVALID wherever it goes).
#[inline]
pub fn quoted(frame: &[u8], p: &Parsed) -> Option<Parsed> {
    match p.l4 {
        L4::Icmp(i) if i.is_error() => {
            let end = (p.ip_end as usize).min(frame.len());
            parse_embedded(&frame[..end], p.l4_off as usize + 8).ok()
        }
        _ => None,
    }
}
