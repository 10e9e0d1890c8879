//! The conntrack settings by their Linux sysctl names: one table, [`SYSCTLS`], behind
//! [`Config::set`], the TOML keys of `[conntrack]` and `[conntrack.timeouts]`,
//! `statewall replay --sysctl`, `statewall doctor` and the table in docs/CONFIG.md.
//! A setting added to [`Config`] is added here once and reaches all of them.

use super::Config;

/// What a setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: 0/1 (or false/true).
    Bool,
    /// A timeout in seconds.
    Secs,
    /// A number (a limit or a count).
    Count,
}

/// A typed value of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// For [`Kind::Bool`].
    Bool(bool),
    /// For [`Kind::Secs`] and [`Kind::Count`].
    Num(u32),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{}", u8::from(*b)),
            Value::Num(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Bool(fn(&mut Config) -> &mut bool),
    Num(fn(&mut Config) -> &mut u32),
}

/// One setting: its sysctl name without `net.netfilter.nf_conntrack_`, its kind and
/// the [`Config`] field it sets.
#[derive(Clone, Copy)]
pub struct Sysctl {
    /// The name without the `net.netfilter.nf_conntrack_` prefix (`tcp_loose`,
    /// `udp_timeout`, `max`).
    pub name: &'static str,
    /// Linux has this sysctl (with the same meaning and default).
    pub linux: bool,
    /// What it holds.
    pub kind: Kind,
    /// One line on what it does.
    pub doc: &'static str,
    field: Field,
}

impl std::fmt::Debug for Sysctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysctl")
            .field("name", &self.name)
            .field("linux", &self.linux)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Sysctl {
    /// The setting named `name`, with or without the `net.netfilter.` and
    /// `nf_conntrack_` prefixes.
    pub fn find(name: &str) -> Option<&'static Sysctl> {
        let n = name.strip_prefix("net.netfilter.").unwrap_or(name);
        let n = n.strip_prefix("nf_conntrack_").unwrap_or(n);
        SYSCTLS.iter().find(|s| s.name == n)
    }

    /// The full sysctl name (`nf_conntrack_tcp_loose`), the `[conntrack]` TOML key.
    pub fn sysctl_name(&self) -> String {
        format!("nf_conntrack_{}", self.name)
    }

    /// Parses a value as `sysctl -w` would take it: 0/1 (or false/true) for a switch,
    /// a decimal number otherwise.
    pub fn parse(&self, value: &str) -> Result<Value, String> {
        match self.kind {
            Kind::Bool => match value.trim() {
                "1" | "true" => Ok(Value::Bool(true)),
                "0" | "false" => Ok(Value::Bool(false)),
                _ => Err(format!("expected 0 or 1, got {value:?}")),
            },
            Kind::Secs | Kind::Count => value
                .trim()
                .parse::<u32>()
                .map(Value::Num)
                .map_err(|_| format!("expected a number, got {value:?}")),
        }
    }

    /// Sets the field; the value must be of the setting's kind.
    pub fn set(&self, cfg: &mut Config, value: Value) -> Result<(), String> {
        match (self.field, value) {
            (Field::Bool(f), Value::Bool(b)) => *f(cfg) = b,
            (Field::Num(f), Value::Num(n)) => *f(cfg) = n,
            (_, v) => return Err(format!("{}: {v:?} is not a {:?}", self.name, self.kind)),
        }
        Ok(())
    }

    /// The field's value in `cfg`.
    pub fn get(&self, cfg: &Config) -> Value {
        let mut c = *cfg;
        match self.field {
            Field::Bool(f) => Value::Bool(*f(&mut c)),
            Field::Num(f) => Value::Num(*f(&mut c)),
        }
    }
}

const fn setting(name: &'static str, doc: &'static str, kind: Kind, field: Field) -> Sysctl {
    Sysctl {
        name,
        linux: true,
        kind,
        doc,
        field,
    }
}

const fn flag(name: &'static str, doc: &'static str, f: fn(&mut Config) -> &mut bool) -> Sysctl {
    setting(name, doc, Kind::Bool, Field::Bool(f))
}

const fn secs(name: &'static str, doc: &'static str, f: fn(&mut Config) -> &mut u32) -> Sysctl {
    setting(name, doc, Kind::Secs, Field::Num(f))
}

const fn count(name: &'static str, doc: &'static str, f: fn(&mut Config) -> &mut u32) -> Sysctl {
    setting(name, doc, Kind::Count, Field::Num(f))
}

/// `sysctl!(kind field, "doc")`: the setting of that [`Config`] field, named after it
/// (`kind` is `flag`, `secs` or `count`); `sysctl!(kind name = field, "doc")` where the
/// sysctl's name is not the field's.
macro_rules! sysctl {
    ($kind:ident $f:ident, $doc:literal) => {
        $kind(stringify!($f), $doc, |c| &mut c.$f)
    };
    ($kind:ident $name:ident = $f:ident, $doc:literal) => {
        $kind(stringify!($name), $doc, |c| &mut c.$f)
    };
}

/// Every setting, in the order of [`Config`]'s fields.
pub const SYSCTLS: &[Sysctl] = &[
    sysctl!(count max = nf_conntrack_max, "the global entry limit"),
    sysctl!(flag checksum, "verify L4 checksums"),
    sysctl!(flag tcp_loose, "a non-SYN packet may pick up a connection"),
    sysctl!(flag tcp_be_liberal, "accept window-check failures"),
    sysctl!(flag tcp_ignore_invalid_rst, "turn off the RST \"seq < peer maxack\" rule"),
    sysctl!(count tcp_max_retrans, "retransmissions that switch to the max_retrans timer"),
    sysctl!(secs tcp_timeout_syn_sent, "SYN_SENT"),
    sysctl!(secs tcp_timeout_syn_recv, "SYN_RECV"),
    sysctl!(secs tcp_timeout_established, "ESTABLISHED"),
    sysctl!(secs tcp_timeout_fin_wait, "FIN_WAIT"),
    sysctl!(secs tcp_timeout_close_wait, "CLOSE_WAIT"),
    sysctl!(secs tcp_timeout_last_ack, "LAST_ACK"),
    sysctl!(secs tcp_timeout_time_wait, "TIME_WAIT"),
    sysctl!(secs tcp_timeout_close, "CLOSE"),
    sysctl!(secs tcp_timeout_syn_sent2, "SYN_SENT2 (simultaneous open)"),
    sysctl!(secs tcp_timeout_max_retrans, "after tcp_max_retrans retransmissions"),
    sysctl!(secs tcp_timeout_unacknowledged, "data outstanding without an ACK; a picked-up connection"),
    sysctl!(secs udp_timeout, "UDP without a reply, or within 2 s of creation"),
    sysctl!(secs udp_timeout_stream, "UDP seen in both directions"),
    sysctl!(secs sctp_timeout_closed, "SCTP CLOSED (after INIT, or closed)"),
    sysctl!(secs sctp_timeout_cookie_wait, "SCTP COOKIE_WAIT"),
    sysctl!(secs sctp_timeout_cookie_echoed, "SCTP COOKIE_ECHOED"),
    sysctl!(secs sctp_timeout_established, "SCTP ESTABLISHED"),
    sysctl!(secs sctp_timeout_shutdown_sent, "SCTP SHUTDOWN_SENT"),
    sysctl!(secs sctp_timeout_shutdown_recd, "SCTP SHUTDOWN_RECD"),
    sysctl!(secs sctp_timeout_shutdown_ack_sent, "SCTP SHUTDOWN_ACK_SENT"),
    sysctl!(secs sctp_timeout_heartbeat_sent, "SCTP HEARTBEAT_SENT"),
    sysctl!(secs icmp_timeout, "ICMP"),
    sysctl!(secs icmpv6_timeout, "ICMPv6"),
    sysctl!(secs generic_timeout, "other protocols"),
    sysctl!(count expect_max, "the global expectation limit"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_set_by_exactly_one_sysctl() {
        // Setting each sysctl to a value no default has changes exactly one field; two
        // sysctls on one field, or a field with none, break the count.
        let base = Config::default();
        let mut touched = Config::default();
        for s in SYSCTLS {
            let mut c = base;
            let v = match s.get(&base) {
                Value::Bool(b) => Value::Bool(!b),
                Value::Num(n) => Value::Num(n ^ 0x5a5a_0001),
            };
            s.set(&mut c, v).unwrap();
            assert_ne!(c, base, "{} sets nothing", s.name);
            assert_eq!(s.get(&c), v, "{}", s.name);
            s.set(&mut touched, v).unwrap();
        }
        // Every field changed: compare field by field through the Debug text.
        let (a, b) = (format!("{base:?}"), format!("{touched:?}"));
        let fields = |t: &str| t.split(", ").map(str::to_string).collect::<Vec<_>>();
        for (x, y) in fields(&a).iter().zip(fields(&b)) {
            assert_ne!(*x, y, "no sysctl sets {x}");
        }
        let mut names: Vec<_> = SYSCTLS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SYSCTLS.len(), "a name twice");
    }

    #[test]
    fn find_takes_the_prefixes_and_parse_checks_the_kind() {
        assert_eq!(
            Sysctl::find("net.netfilter.nf_conntrack_tcp_loose")
                .unwrap()
                .name,
            "tcp_loose"
        );
        assert_eq!(Sysctl::find("nf_conntrack_max").unwrap().name, "max");
        assert!(Sysctl::find("tcp_timeout_syn_sent2").is_some());
        assert!(Sysctl::find("bogus").is_none());
        let loose = Sysctl::find("tcp_loose").unwrap();
        assert_eq!(loose.parse("0"), Ok(Value::Bool(false)));
        assert!(loose.parse("2").is_err());
        let mut c = Config::default();
        assert!(loose.set(&mut c, Value::Num(1)).is_err());
        assert!(Sysctl::find("udp_timeout").unwrap().parse("x").is_err());
    }
}
