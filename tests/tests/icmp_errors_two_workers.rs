//! ICMP errors reach the worker that owns their flow: two workers on af_packet, the
//! inside sends UDP datagrams from 32 different source ports to a closed port outside;
//! the outside kernel answers each with a port-unreachable, which statewall must pass as
//! RELATED (the demo ruleset accepts RELATED and drops INVALID). With steering by the
//! outer header, about half of them would reach the other worker, be INVALID and be
//! dropped, and the client would time out instead of seeing "connection refused".

use statewall_e2e::*;

const CLIENTS: &str = "import socket,sys
ok=0
for i in range(32):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind((sys.argv[1],40000+i))
    s.connect((sys.argv[2],9))
    s.send(b'x')
    try:
        s.recv(100)
    except ConnectionRefusedError:
        ok+=1
    except socket.timeout:
        pass
print(ok)
";

#[test]
fn icmp_errors_are_related_on_two_workers() {
    let test = "icmp_errors_are_related_on_two_workers";
    let Some(topo) = Topology::for_test(test, e2e_needs(test)) else {
        return;
    };
    let sw = Statewall::start_with(&topo, Mode::Forward, DEMO_RULES, None, "", 2);
    let script = sw.dir.path().join("clients.py");
    std::fs::write(&script, CLIENTS).unwrap();
    // The outside kernel rate-limits port-unreachables per destination; lift it so every
    // datagram gets its error.
    let r = topo.outside(10, &["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
    assert!(r.status.success(), "sysctl: {}", show(&r));
    let py = python3();
    let o = topo.inside(
        120,
        &[
            &py,
            script.to_str().unwrap(),
            &topo.inside_ip,
            &topo.outside_ip,
        ],
    );
    let refused: u32 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let related = sw.metric("statewall_packets_total{state=\"RELATED\"}");
    let invalid = sw.metric("statewall_packets_total{state=\"INVALID\"}");
    assert_eq!(
        refused, 32,
        "every datagram's port-unreachable came back (RELATED {related}, INVALID {invalid}): {}\n{}",
        show(&o),
        sw.logs()
    );
    assert!(related >= 32.0, "RELATED {related}\n{}", sw.logs());
    assert_eq!(
        invalid,
        0.0,
        "no error was INVALID on the wrong worker\n{}",
        sw.logs()
    );
}
