//! statewall as a bump in the wire between two af_xdp ports: two hosts in their own
//! network namespaces ping each other through it. Needs root (namespaces, AF_XDP, bpf);
//! prints SKIP otherwise.

use statewall::config::Config;
use statewall::runtime::Runtime;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            ip(&["netns", "del", n]);
        }
    }
}

#[test]
fn af_xdp_bump_in_the_wire_forwards_ping() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP af_xdp_bump_in_the_wire_forwards_ping: needs root/netns/AF_XDP");
        return;
    }
    let id = std::process::id() % 100_000;
    let (fw, h1, h2) = (
        format!("swfw{id}"),
        format!("swh1{id}"),
        format!("swh2{id}"),
    );
    let (f1, f2) = (format!("swf1{id}"), format!("swf2{id}"));
    let ns = Namespaces(vec![fw.clone(), h1.clone(), h2.clone()]);
    let mut ok = true;
    for n in &ns.0 {
        ok &= ip(&["netns", "add", n]);
    }
    for (h, f, addr) in [(&h1, &f1, "10.77.0.1/24"), (&h2, &f2, "10.77.0.2/24")] {
        ok &= ip(&[
            "link", "add", "eth0", "netns", h, "type", "veth", "peer", "name", f, "netns", &fw,
        ]);
        ok &= ip(&["-n", h, "link", "set", "eth0", "addrgenmode", "none"]);
        ok &= ip(&["-n", &fw, "link", "set", f, "addrgenmode", "none"]);
        ok &= ip(&["-n", h, "addr", "add", addr, "dev", "eth0"]);
        ok &= ip(&["-n", h, "link", "set", "eth0", "up"]);
        ok &= ip(&["-n", &fw, "link", "set", f, "up"]);
    }
    if !ok {
        println!("SKIP af_xdp_bump_in_the_wire_forwards_ping: cannot create netns/veth");
        return;
    }
    let text = format!(
        "[dataplane]\nworkers = 1\npool_size = 2048\nnon_ip = \"pass-arp\"\n\
         [control]\nlisten = \"\"\n\
         [[port]]\nname = \"outside\"\nbackend = \"af_xdp\"\ninterface = \"{f1}\"\ndescriptors = 256\n\
         [[port]]\nname = \"inside\"\nbackend = \"af_xdp\"\ninterface = \"{f2}\"\ndescriptors = 256\n\
         [[pair]]\nnetwork = \"outside\"\nhost = \"inside\"\n"
    );
    let cfg = Config::parse(&text, "test").expect("config");
    let (started_tx, started_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let fw_path = format!("/var/run/netns/{fw}");
    let t = std::thread::spawn(move || {
        let f = std::fs::File::open(&fw_path).expect("netns file");
        // SAFETY: `f` is an open namespace file; setns changes only this thread's network
        // namespace (and the worker threads it starts inherit it).
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        match Runtime::start(cfg, false) {
            Ok(rt) => {
                started_tx.send(Ok(())).unwrap();
                let _ = stop_rx.recv();
                rt.shutdown();
            }
            Err(e) => started_tx.send(Err(format!("{e:#}"))).unwrap(),
        }
    });
    match started_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("runtime answers")
    {
        Ok(()) => {}
        Err(e) if e.contains("Operation not permitted") || e.contains("not supported") => {
            println!("SKIP af_xdp_bump_in_the_wire_forwards_ping: {e}");
            t.join().unwrap();
            return;
        }
        Err(e) => panic!("runtime start: {e}"),
    }
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h1,
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "10.77.0.2",
        ])
        .output();
    let xdp_shown = Command::new("ip")
        .args(["-n", &fw, "link", "show", &f1])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("xdp"))
        .unwrap_or(false);
    stop_tx.send(()).unwrap();
    t.join().unwrap();
    let ping = match ping {
        Ok(o) => o,
        Err(e) => {
            println!("SKIP af_xdp_bump_in_the_wire_forwards_ping: no ping ({e})");
            return;
        }
    };
    assert!(xdp_shown, "the XDP program is attached while running");
    assert!(
        ping.status.success(),
        "ping through statewall: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    drop(ns);
}
