//! Forward mode (bump in the wire) with `deploy/examples/demo.rules`: the inside may open
//! TCP, UDP and ICMP "connections", replies come back, the outside can open none.

use statewall_e2e::*;
use std::time::Instant;

const UDP_ECHO: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind((sys.argv[1],int(sys.argv[2])))
while True:
    d,a=s.recvfrom(2048)
    s.sendto(b'echo:'+d,a)
";

/// Sends one datagram, prints the reply or the error (connected socket, so an ICMP
/// port-unreachable shows up as ConnectionRefusedError).
const UDP_CLIENT: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1],int(sys.argv[2])))
s.send(b'ping-udp')
try:
    print(s.recv(2048).decode())
except ConnectionRefusedError:
    print('REFUSED')
except socket.timeout:
    print('TIMEOUT')
";

#[test]
fn forward_demo_inside_opens_outside_cannot() {
    let test = "forward_demo_inside_opens_outside_cannot";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["curl", "ping"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Forward, DEMO_RULES, "");
    let d = sw.dir.path();
    let www = www_with(d, "f.txt", "forwarded\n");
    std::fs::write(d.join("udp_echo.py"), UDP_ECHO).unwrap();
    std::fs::write(d.join("udp_client.py"), UDP_CLIENT).unwrap();
    let echo = d.join("udp_echo.py");
    let client = d.join("udp_client.py");
    let (echo, client) = (echo.to_str().unwrap(), client.to_str().unwrap());
    let py = python3();
    let (ns_in, ns_out) = (&topo.inside_ns, &topo.outside_ns);
    let (ip_in, ip_out) = (&topo.inside_ip, &topo.outside_ip);
    let _h_out = topo.http_server((ns_out, ip_out, 8080), &www, (d, "http-out"), 120);
    let h_in = topo.http_server((ns_in, ip_in, 8081), &www, (d, "http-in"), 120);
    let _u_out = topo.spawn_in(ns_out, 120, d, d, "udp-out", &[&py, echo, ip_out, "5300"]);
    let u_in = topo.spawn_in(ns_in, 120, d, d, "udp-in", &[&py, echo, ip_in, "5301"]);
    topo.wait_udp_listen(ns_out, 5300, 10);
    topo.wait_udp_listen(ns_in, 5301, 10);
    let mut report = String::new();

    // TCP from inside: NEW -i inside ACCEPT, replies ESTABLISHED.
    let url = format!("http://{ip_out}:8080/f.txt");
    let t0 = Instant::now();
    let o = topo.inside(
        15,
        &["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", &url],
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout) == "forwarded\n\n200",
        "TCP inside -> outside ({url}) failed: {}\n{}",
        show(&o),
        sw.logs()
    );
    report += &format!("tcp inside->outside: 200 in {:?}\n", t0.elapsed());

    // TCP from outside: NEW not from inside -> REJECT --reject-with tcp-reset: refused at once.
    let url = format!("http://{ip_in}:8081/f.txt");
    let t0 = Instant::now();
    let o = topo.outside(15, &["curl", "-sS", "-m", "5", &url]);
    let took = t0.elapsed();
    assert_eq!(
        o.status.code(),
        Some(7),
        "TCP outside -> inside ({url}) must be refused by a reset: {}\n{}",
        show(&o),
        sw.logs()
    );
    assert!(
        took.as_secs_f64() < 1.5,
        "reset took {took:?}\n{}",
        sw.logs()
    );
    assert!(
        !h_in.stderr().contains("GET /f.txt"),
        "inside server reached"
    );
    report += &format!("tcp outside->inside: refused (reset) in {took:?}\n");

    // UDP request/response from inside.
    let o = topo.inside(10, &[&py, client, ip_out, "5300"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "echo:ping-udp",
        "UDP inside -> outside: {}\n{}",
        show(&o),
        sw.logs()
    );
    report += "udp inside->outside: echoed\n";

    // UDP from outside: REJECT (icmp-port-unreachable) -> the connected socket sees it.
    let o = topo.outside(10, &[&py, client, ip_in, "5301"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "REFUSED",
        "UDP outside -> inside must be refused by icmp-port-unreachable: {}\n{}",
        show(&o),
        sw.logs()
    );
    drop(u_in);
    report += "udp outside->inside: port unreachable\n";

    // ICMP echo from inside works.
    let o = topo.inside(10, &["ping", "-c", "3", "-i", "0.2", "-W", "2", ip_out]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("3 received"),
        "ping inside -> outside: {}\n{}",
        show(&o),
        sw.logs()
    );
    report += "ping inside->outside: 3/3\n";

    // ... and from outside it does not (the echo request is rejected, no reply).
    let o = topo.outside(10, &["ping", "-c", "3", "-i", "0.2", "-W", "1", ip_in]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && out.contains(" 0 received"),
        "ping outside -> inside must get no reply: {}\n{}",
        show(&o),
        sw.logs()
    );
    report += &format!(
        "ping outside->inside: no reply ({})\n",
        if out.contains("Unreachable") {
            "port unreachable"
        } else {
            "silent"
        }
    );

    let m = sw.metrics();
    assert!(
        metric_value(&m, r#"statewall_drops_total{reason="reject"}"#) >= 5.0,
        "{}",
        sw.logs()
    );
    println!("{test}: ok\n{report}counters:\n{}", interesting(&m));
}
