//! Fault: `statewall run` killed with SIGKILL while traffic flows, then started again on
//! the same configuration. Nothing a killed process leaves behind may stop the restart:
//! the control listener (same address; a unix control socket where the build has one,
//! which a start must clear when stale), the af_packet sockets, and for af_xdp the XDP
//! program on the interface (attached through a BPF link owned by the process, so the
//! kernel detaches it when the process dies; a restart attaches a fresh one, never
//! EBUSY). After the restart, traffic flows again through the same ports.
//!
//! DPDK (not built into the binary these tests run) is discussed in bench/README.md's
//! fault section.

use statewall_e2e::*;
use std::time::Duration;

/// `ping` from the inside namespace to the outside one: true when `count` pings got
/// at least one answer.
fn ping_ok(t: &Topology, count: u32) -> bool {
    let o = t.inside(
        15,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            &t.outside_ip,
        ],
    );
    o.status.success()
}

/// Is an XDP program attached to `dev` (root namespace)?
fn xdp_attached(dev: &str) -> bool {
    let o = run_timeout(5, &["ip", "-d", "link", "show", "dev", dev]);
    let s = String::from_utf8_lossy(&o.stdout);
    s.contains("prog/xdp") || s.contains(" xdp")
}

fn kill_during_traffic_then_restart(test: &str, backend: &str) {
    let t = Topology::fault(test);
    let ports = [
        FaultPort {
            name: "inside".into(),
            backend: backend.into(),
            interface: t.fw_in.clone(),
        },
        FaultPort {
            name: "outside".into(),
            backend: backend.into(),
            interface: t.fw_out.clone(),
        },
    ];
    let mut w = FaultWall::start(test, 1, &ports, &[("outside", "inside")], ACCEPT_ALL, "");
    assert!(
        ping_ok(&t, 3),
        "{test}: ping before the kill\n{}",
        w.stderr()
    );
    if backend == "af_xdp" {
        assert!(xdp_attached(&t.fw_in), "{test}: XDP attached while running");
    }
    // Traffic in flight while the process dies: a ping flood in the background.
    let log = w.dir.path().to_path_buf();
    let mut flood = t.ping_flood((&t.inside_ns, &t.outside_ip), 15, &log, "flood");
    std::thread::sleep(Duration::from_millis(800));
    let rx_before = w.metric("statewall_port_rx_packets_total{port=\"inside\"}");
    assert!(rx_before > 20.0, "{test}: traffic flowed before the kill");
    let pid = w.pid().unwrap();
    w.kill9();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{test}: the process is gone"
    );
    if backend == "af_xdp" {
        // The program was attached through a BPF link held by the dead process: the
        // kernel detaches it when the last descriptor closes.
        let mut gone = false;
        for _ in 0..50 {
            if !xdp_attached(&t.fw_in) && !xdp_attached(&t.fw_out) {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(gone, "{test}: XDP program detached after SIGKILL");
    }
    // Restart at once, the flood still running, on the same control address.
    if let Err(e) = w.launch() {
        panic!("{test}: restart after SIGKILL failed: {e}");
    }
    assert!(w.alive());
    if backend == "af_xdp" {
        assert!(xdp_attached(&t.fw_in), "{test}: XDP attached again");
    }
    assert!(
        ping_ok(&t, 3),
        "{test}: ping after the restart\n{}",
        w.stderr()
    );
    let rx_after = w.wait_rx("inside", 3.0);
    assert!(
        rx_after >= 3.0,
        "{test}: the restarted process forwards ({rx_after} packets)"
    );
    flood.stop(libc::SIGINT);
    // A second kill and restart, to show the first restart left nothing stale either.
    w.kill9();
    if let Err(e) = w.launch() {
        panic!("{test}: second restart failed: {e}");
    }
    assert!(ping_ok(&t, 2), "{test}: ping after the second restart");
}

trait WaitRx {
    fn wait_rx(&self, port: &str, min: f64) -> f64;
}

impl WaitRx for FaultWall {
    /// Polls port `port`'s rx counter until it reaches `min` (up to 3 s).
    fn wait_rx(&self, port: &str, min: f64) -> f64 {
        let series = format!("statewall_port_rx_packets_total{{port=\"{port}\"}}");
        let t0 = std::time::Instant::now();
        loop {
            let v = self.metric(&series);
            if v >= min || t0.elapsed() > Duration::from_secs(3) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn fault_kill9_during_traffic_restart_af_packet() {
    on_backend(
        "fault_kill9_during_traffic_restart_af_packet",
        "af_packet",
        kill_during_traffic_then_restart,
    );
}

#[test]
fn fault_kill9_during_traffic_restart_af_xdp() {
    on_backend(
        "fault_kill9_during_traffic_restart_af_xdp",
        "af_xdp",
        kill_during_traffic_then_restart,
    );
}
