//! IPv6 through statewall in forward mode, with an IPv4 ruleset (`rules.file`) and an
//! IPv6 one (`rules.file6`), as iptables-restore and ip6tables-restore keep them apart.
//! The IPv6 ruleset lets the inside open connections and lets neighbour discovery through
//! (NDP is UNTRACKED in Linux conntrack, so a stateful ruleset must allow it explicitly).

use statewall_e2e::*;

const RULES6: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT
-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
";

#[test]
fn ipv6_forward_inside_opens_outside_cannot() {
    let test = "ipv6_forward_inside_opens_outside_cannot";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["curl", "ping"])) else {
        return;
    };
    let sw = Statewall::start_dual(&topo, Mode::Forward, DEMO_RULES, Some(RULES6), "");
    let d = sw.dir.path();
    let www = www_with(d, "f.txt", "over ipv6\n");
    let (ns_in, ns_out) = (&topo.inside_ns, &topo.outside_ns);
    let (ip_in, ip_out) = (&topo.inside_ip6, &topo.outside_ip6);
    let _h_out = topo.http_server((ns_out, ip_out, 8080), &www, (d, "http-out"), 60);
    let _h_in = topo.http_server((ns_in, ip_in, 8081), &www, (d, "http-in"), 60);

    let o = topo.inside(
        10,
        &[
            "ping",
            "-6",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            &topo.outside_ip6,
        ],
    );
    assert!(
        o.status.success(),
        "ping -6 inside -> outside: {}\n{}",
        show(&o),
        sw.logs()
    );
    let url = format!("http://[{}]:8080/f.txt", topo.outside_ip6);
    let o = topo.inside(15, &["curl", "-g", "-sS", "-m", "10", &url]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout) == "over ipv6\n",
        "curl -6 inside -> outside: {}\n{}",
        show(&o),
        sw.logs()
    );
    let url = format!("http://[{}]:8081/f.txt", topo.inside_ip6);
    let o = topo.outside(15, &["curl", "-g", "-sS", "-m", "5", &url]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl -6 outside -> inside must be reset: {}\n{}",
        show(&o),
        sw.logs()
    );
    println!("{test}: ok");
}
