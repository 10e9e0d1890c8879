//! Fragments reach the worker that owns their connection: two workers on af_packet, the
//! inside sends small UDP queries from 32 source ports to a server outside, which
//! answers each with a 3000-byte datagram that the outside kernel fragments (MTU 1500).
//!
//! The steering program hashes fragments by their addresses only (a non-first fragment
//! has no ports), so all 32 answers are reassembled on one worker, while their
//! connections are spread over both by their ports. Without the hand-off, about half of
//! the answers would be judged on a shard that never saw the query: NEW from outside,
//! rejected by the demo ruleset, and the client would see "connection refused" instead
//! of its answer.

use statewall_e2e::*;

const SERVER: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind((sys.argv[1],int(sys.argv[2])))
while True:
    d,a=s.recvfrom(100)
    s.sendto(bytes(i%251 for i in range(3000)),a)
";

const CLIENTS: &str = "import socket,sys
ok=0
bad=[]
for i in range(32):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind((sys.argv[1],41000+i))
    s.connect((sys.argv[2],int(sys.argv[3])))
    s.send(b'q')
    try:
        d=s.recv(4000)
        if d==bytes(i%251 for i in range(3000)):
            ok+=1
        else:
            bad.append((i,len(d)))
    except Exception as e:
        bad.append((i,repr(e)))
print(ok)
print(bad,file=sys.stderr)
";

#[test]
fn fragmented_answers_reach_the_owner_on_two_workers() {
    let test = "fragmented_answers_reach_the_owner_on_two_workers";
    let Some(topo) = Topology::for_test(test, e2e_needs(test)) else {
        return;
    };
    let sw = Statewall::start_with(&topo, Mode::Forward, DEMO_RULES, None, "", 2);
    let d = sw.dir.path();
    std::fs::write(d.join("server.py"), SERVER).unwrap();
    std::fs::write(d.join("clients.py"), CLIENTS).unwrap();
    let (server, clients) = (d.join("server.py"), d.join("clients.py"));
    let py = python3();
    let _srv = topo.spawn_in(
        &topo.outside_ns,
        120,
        d,
        d,
        "server",
        &[&py, server.to_str().unwrap(), &topo.outside_ip, "5400"],
    );
    topo.wait_udp_listen(&topo.outside_ns, 5400, 10);
    let o = topo.inside(
        120,
        &[
            &py,
            clients.to_str().unwrap(),
            &topo.inside_ip,
            &topo.outside_ip,
            "5400",
        ],
    );
    let answered: u32 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let m = sw.metrics();
    let handed: f64 = (0..2)
        .map(|w| {
            metric_value(
                &m,
                &format!("statewall_worker_handoff_packets_total{{worker=\"{w}\"}}"),
            )
        })
        .sum();
    assert_eq!(
        answered,
        32,
        "every fragmented answer came back whole: {}\n{}\n{}",
        show(&o),
        interesting(&m),
        sw.logs()
    );
    // The answers' fragments all landed on one worker; the trains of the connections the
    // other one owns were handed over (three fragments per answer).
    assert!(
        handed >= 3.0,
        "fragment trains were handed to their owner ({handed})\n{}",
        interesting(&m)
    );
    assert_eq!(
        metric_value(&m, "statewall_packets_total{state=\"INVALID\"}"),
        0.0,
        "{}",
        interesting(&m)
    );
    assert_eq!(
        metric_value(&m, "statewall_drops_total{reason=\"handoff_full\"}"),
        0.0
    );
}
