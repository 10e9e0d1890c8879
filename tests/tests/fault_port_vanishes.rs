//! Fault: a port's interface disappears (its veth deleted) while traffic flows through
//! two pairs on one worker. The vanished port is counted
//! (`statewall_port_down_events_total` once, the frames sent to it in
//! `statewall_port_tx_errors_total`) and logged once, not per packet; the process and its
//! worker go on, and the other pair keeps forwarding: pings through it after the deletion
//! all come back and its port counters keep rising.

use statewall_e2e::*;
use std::time::{Duration, Instant};

fn ping(ns: &str, dst: &str, count: u32, interval: &str) -> std::process::Output {
    Topology::cmd_in(
        ns,
        30,
        &[
            "ping",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "2",
            dst,
        ],
    )
    .output()
    .expect("ping")
}

/// The received count of a `ping -q` summary line.
fn received(o: &std::process::Output) -> u32 {
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|f| f.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn port(name: &str, backend: &str, interface: &str) -> FaultPort {
    FaultPort {
        name: name.into(),
        backend: backend.into(),
        interface: interface.into(),
    }
}

fn vanishing_port(test: &str, backend: &str) {
    let a = Topology::fault(test);
    let b = Topology::fault(test);
    let ports = [
        port("a_in", backend, &a.fw_in),
        port("a_out", backend, &a.fw_out),
        port("b_in", backend, &b.fw_in),
        port("b_out", backend, &b.fw_out),
    ];
    let mut w = FaultWall::start(
        test,
        1,
        &ports,
        &[("a_out", "a_in"), ("b_out", "b_in")],
        ACCEPT_ALL,
        "",
    );
    for t in [&a, &b] {
        let o = ping(&t.inside_ns, &t.outside_ip, 3, "0.2");
        assert_eq!(
            received(&o),
            3,
            "{test}: ping through both pairs first\n{}",
            w.stderr()
        );
    }
    // Traffic toward the port that will vanish: the outside of pair A keeps pinging its
    // inside (the frames arrive on a_out and are forwarded to a_in).
    let log = w.dir.path().to_path_buf();
    let mut flood_a = a.ping_flood((&a.outside_ns, &a.inside_ip), 20, &log, "flood-a");
    std::thread::sleep(Duration::from_millis(500));
    // The veth under port a_in disappears (its namespace end goes with it).
    must(&["ip", "link", "del", &a.fw_in]);
    let b_before = w.metric("statewall_port_rx_packets_total{port=\"b_in\"}");
    // The other pair keeps forwarding, with no loss, while pair A's traffic still
    // arrives on a_out and meets a port that is gone.
    let o = ping(&b.inside_ns, &b.outside_ip, 200, "0.01");
    assert_eq!(
        received(&o),
        200,
        "{test}: pair B forwards every ping after a_in vanished: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        w.stderr()
    );
    assert!(w.alive(), "{test}: statewall still runs\n{}", w.stderr());
    let b_after = w.metric("statewall_port_rx_packets_total{port=\"b_in\"}");
    assert!(
        b_after >= b_before + 200.0,
        "{test}: pair B's port counters go on ({b_before} -> {b_after})"
    );
    // Counted: one down transition on a_in; what was forwarded to it is counted too.
    let t0 = Instant::now();
    let mut downs = 0.0;
    while t0.elapsed() < Duration::from_secs(5) {
        downs = w.metric("statewall_port_down_events_total{port=\"a_in\"}");
        if downs >= 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = w.metrics();
    assert_eq!(
        downs,
        1.0,
        "{test}: a_in counted down once\n{}",
        interesting(&m)
    );
    let a_out_rx = metric_value(&m, "statewall_port_rx_packets_total{port=\"a_out\"}");
    let a_in_err = metric_value(&m, "statewall_port_tx_errors_total{port=\"a_in\"}");
    let tx_full = metric_value(&m, "statewall_drops_total{reason=\"tx_full\"}");
    assert!(a_out_rx > 0.0, "{test}: pair A's traffic kept arriving");
    assert!(
        a_in_err + tx_full > 0.0,
        "{test}: frames sent to the vanished port are counted\n{}",
        interesting(&m)
    );
    for p in ["a_out", "b_in", "b_out"] {
        let d = metric_value(
            &m,
            &format!("statewall_port_down_events_total{{port=\"{p}\"}}"),
        );
        assert_eq!(d, 0.0, "{test}: port {p} never went down");
    }
    flood_a.stop(libc::SIGINT);
    // Logged once, not per packet.
    let err = w.stderr();
    let lines = err.matches("interface down or gone").count();
    assert_eq!(
        lines, 1,
        "{test}: one log line for the vanished port:\n{err}"
    );
    assert!(
        err.contains("a_in"),
        "{test}: the log names the port:\n{err}"
    );
    // Still answering and still forwarding on B.
    let o = ping(&b.inside_ns, &b.outside_ip, 3, "0.2");
    assert_eq!(received(&o), 3, "{test}: pair B at the end");
}

#[test]
fn fault_port_vanishes_af_packet() {
    on_backend("fault_port_vanishes_af_packet", "af_packet", vanishing_port);
}

#[test]
fn fault_port_vanishes_af_xdp() {
    on_backend("fault_port_vanishes_af_xdp", "af_xdp", vanishing_port);
}
