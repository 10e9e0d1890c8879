//! `-s` / `-d` (and conntrack's tuple options): an address with an optional prefix
//! length or mask, which also fixes the ruleset's family.

use super::super::lex::Tok;
use super::super::values::prefix_mask;
use super::{Res, RuleParser};
use crate::packet::Family;
use crate::ruleset::Net;
use std::net::IpAddr;

impl RuleParser<'_> {
    pub(super) fn parse_net(&mut self, v: &Tok) -> Res<Net> {
        let (addr, mask) = match v.s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (v.s.as_str(), None),
        };
        if addr.contains(',') {
            return Err(self.err(
                v.col,
                "several addresses in one option are not supported; write one rule per address",
            ));
        }
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| self.err(v.col, format!("bad address \"{addr}\"")))?;
        let (fam, bits) = match ip {
            IpAddr::V4(a) => (Family::V4, (u32::from(a) as u128) << 96),
            IpAddr::V6(a) => (Family::V6, u128::from(a)),
        };
        self.r
            .set_family(fam, v.col, &format!("address \"{addr}\""))?;
        let width = if fam == Family::V4 { 32 } else { 128 };
        let mask = match mask {
            None => prefix_mask(width, width),
            Some(m) => {
                if let Ok(n) = m.parse::<u32>() {
                    if n > width {
                        return Err(self.err(v.col, format!("bad prefix length \"/{m}\"")));
                    }
                    prefix_mask(n, width)
                } else {
                    match (fam, m.parse::<IpAddr>()) {
                        (Family::V4, Ok(IpAddr::V4(a))) => (u32::from(a) as u128) << 96,
                        (Family::V6, Ok(IpAddr::V6(a))) => u128::from(a),
                        _ => return Err(self.err(v.col, format!("bad mask \"/{m}\""))),
                    }
                }
            }
        };
        Ok(Net {
            net: bits & mask,
            mask,
        })
    }
}
