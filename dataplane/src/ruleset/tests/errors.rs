//! The reader's errors: each with its line and column.

use super::*;

#[test]
fn ruleset_errors_have_line_and_column() {
    let base = "*filter\n:INPUT DROP [0:0]\n";
    let cases: &[(&str, &str)] = &[
        ("-A INPUT -m foo -j ACCEPT", "rules.v4:3:10: unknown match \"-m foo\""),
        ("-A INPUT -m connlimit --connlimit-above 3", "rules.v4:3:10: match \"-m connlimit\" is not supported by statewall"),
        ("-A INPUT -p tcp --bogus 1", "rules.v4:3:17: unknown option \"--bogus\""),
        ("-A INPUT -j MASQUERADE", "rules.v4:3:13: MASQUERADE is only valid in the nat table"),
        ("-A INPUT -j nowhere", "rules.v4:3:13: unknown target or chain \"nowhere\""),
        ("-A NOPE -j ACCEPT", "rules.v4:3:4: chain \"NOPE\" does not exist in table filter"),
        ("-A INPUT --dport 22 -j ACCEPT", "rules.v4:3:10: option \"--dport\" needs \"-p tcp\" or \"-p udp\" first"),
        ("-A INPUT -m tcp --dport 22", "rules.v4:3:10: match \"tcp\" needs -p tcp before it"),
        ("-A INPUT -p tcp -m tcp --dport 30:20", "rules.v4:3:32: invalid port range \"30:20\" (min > max)"),
        ("-A INPUT -s 10.0.0.300 -j DROP", "rules.v4:3:13: bad address \"10.0.0.300\""),
        ("-A INPUT -s 2001:db8::1 -j DROP", "rules.v4:3:13: address \"2001:db8::1\" is IPv6 but this is an IPv4 ruleset"),
        ("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16", "rules.v4:3:39: too many ports in \"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16\" (at most 15, a range counts as 2)"),
        ("-A INPUT -m state --state NEW,SNAT", "rules.v4:3:27: bad state \"SNAT\""),
        ("-A INPUT -m comment ! --comment x", "rules.v4:3:21: \"!\" cannot be used with \"--comment\""),
        ("-A INPUT -j REJECT --reject-with tcp-reset", "rules.v4:3:34: tcp-reset is only valid with \"-p tcp\""),
        ("-A INPUT -j REJECT --reject-with icmp-bogus", "rules.v4:3:34: unknown --reject-with \"icmp-bogus\""),
        ("-A INPUT -j CT --notrack", "rules.v4:3:13: CT is only valid in the raw table"),
        ("-A INPUT -o eth0 -j ACCEPT", "rules.v4:3:10: can't use -o with INPUT"),
        ("-A INPUT -m limit --limit 3/fortnight", "rules.v4:3:27: bad rate unit in \"3/fortnight\" (second, minute, hour or day)"),
        ("-A INPUT -m comment --comment \"open", "rules.v4:3:31: unterminated quote"),
        ("-I INPUT -j ACCEPT", "rules.v4:3:1: command \"-I\" is not supported (iptables-save files use -A and :CHAIN lines only)"),
        ("-A INPUT -j ACCEPT -j DROP", "rules.v4:3:20: only one -j or -g per rule"),
        ("-A INPUT -p tcp -m tcp --tcp-flags SYN,BOGUS SYN", "rules.v4:3:36: unknown TCP flag \"BOGUS\""),
        ("-A INPUT -p icmp -m icmp --icmp-type nonsense", "rules.v4:3:38: unknown icmp type \"nonsense\""),
        (":FORWARD REJECT [0:0]", "rules.v4:3:10: bad policy \"REJECT\" (ACCEPT or DROP)"),
        (":INPUT ACCEPT [0:0]", "rules.v4:3:1: chain \"INPUT\" declared twice"),
        (":FORWARD - [0:0]", "rules.v4:3:10: built-in chain FORWARD needs a policy ACCEPT or DROP"),
        (":mine ACCEPT [0:0]", "rules.v4:3:7: user chain \"mine\" cannot have a policy (write \"-\")"),
        ("-A INPUT -m state", "rules.v4:3:4: match \"state\" needs --state"),
    ];
    let mut bad = Vec::new();
    for (line, want) in cases {
        let got = err(&format!("{base}{line}\nCOMMIT\n"));
        if &got != want {
            bad.push(format!("{line}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(err("# x\n*security\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
        .starts_with("rules.v4:2:1: table \"security\" is not supported: it holds SELinux labels"));
    assert_eq!(
        err("*filter\n-A INPUT -j ACCEPT\n"),
        "rules.v4:1:1: table filter has no COMMIT"
    );
    assert_eq!(
        err("-A INPUT -j ACCEPT\n"),
        "rules.v4:1:1: expected a table (\"*filter\", \"*raw\", \"*nat\" or \"*mangle\") first"
    );
    assert_eq!(
        err("*raw\n-A PREROUTING -j REJECT\nCOMMIT\n"),
        "rules.v4:2:18: REJECT is only valid in the filter table"
    );
    assert_eq!(
        err("*raw\n-A PREROUTING -j CT --helper sip\nCOMMIT\n"),
        "rules.v4:2:30: helper \"sip\" is not supported (only \"ftp\")"
    );
    // Loops, with the line of the jump that closes them.
    let looped = "*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -p tcp -g a\nCOMMIT\n";
    assert_eq!(
        err(looped),
        "rules.v4:7:16: loop: chain \"b\" jumps back to \"a\""
    );
    let selfloop = "*filter\n:a - [0:0]\n-A a -j a\nCOMMIT\n";
    assert_eq!(
        err(selfloop),
        "rules.v4:3:9: loop: chain \"a\" jumps back to \"a\""
    );
    // 12th line.
    let mut many = String::from("*filter\n:INPUT DROP [0:0]\n");
    for _ in 0..9 {
        many.push_str("-A INPUT -j ACCEPT\n");
    }
    many.push_str("-A INPUT -m foo\nCOMMIT\n");
    assert_eq!(err(&many), "rules.v4:12:10: unknown match \"-m foo\"");
    let e = parse_ruleset(&many, "rules.v4", None).unwrap_err();
    assert_eq!((e.line, e.column), (12, 10));
}
