//! statewall as a bump in the wire between two af_xdp ports: two hosts in their own
//! network namespaces talk through it. Needs root (namespaces, AF_XDP, bpf); prints
//! SKIP otherwise.

use statewall::config::Config;
use statewall::runtime::Runtime;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Namespaces `fw` (statewall's), `h1` (10.77.0.1) and `h2` (10.77.0.2); `h1`'s eth0 is
/// paired with `f1` in `fw` and `h2`'s with `f2`. Deleted on drop.
struct Bench {
    fw: String,
    h1: String,
    h2: String,
    f1: String,
    f2: String,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for n in [&self.fw, &self.h1, &self.h2] {
            ip(&["netns", "del", n]);
        }
    }
}

impl Bench {
    /// The namespaces and veths, `queues` rx/tx queues on every veth; None when this
    /// machine lacks root, `ip netns`, AF_XDP or one of `tools` (SKIP printed by
    /// [`prereq`], which fails the test instead in CI).
    fn new(test: &str, tag: &str, queues: u16, tools: &[&str]) -> Option<Bench> {
        if prereq::needs(test).netns().af_xdp().tools(tools).skip() {
            return None;
        }
        let id = std::process::id() % 100_000;
        let n = |p: &str| format!("{p}{tag}{id}");
        let b = Bench {
            fw: n("swfw"),
            h1: n("swh1"),
            h2: n("swh2"),
            f1: n("swf1"),
            f2: n("swf2"),
        };
        let q = queues.to_string();
        let mut ok = true;
        for ns in [&b.fw, &b.h1, &b.h2] {
            ok &= ip(&["netns", "add", ns]);
        }
        for (h, f, addr) in [
            (&b.h1, &b.f1, "10.77.0.1/24"),
            (&b.h2, &b.f2, "10.77.0.2/24"),
        ] {
            ok &= ip(&[
                "link",
                "add",
                "eth0",
                "netns",
                h,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                f,
                "netns",
                &b.fw,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ]);
            ok &= ip(&["-n", h, "link", "set", "eth0", "addrgenmode", "none"]);
            ok &= ip(&["-n", &b.fw, "link", "set", f, "addrgenmode", "none"]);
            ok &= ip(&["-n", h, "addr", "add", addr, "dev", "eth0"]);
            ok &= ip(&["-n", h, "link", "set", "eth0", "up"]);
            ok &= ip(&["-n", &b.fw, "link", "set", f, "up"]);
        }
        assert!(ok, "{test}: cannot create the namespaces and veths");
        Some(b)
    }

    fn exec(&self, ns: &str, args: &[&str]) -> std::io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
    }

    /// Offloads off on every veth end (full checksums in every frame: a TCP segment from
    /// a local stack otherwise carries a partial one). False when ethtool fails.
    fn offloads_off(&self) -> bool {
        let mut ok = true;
        for (ns, dev) in [
            (&self.h1, "eth0"),
            (&self.h2, "eth0"),
            (&self.fw, self.f1.as_str()),
            (&self.fw, self.f2.as_str()),
        ] {
            ok &= self
                .exec(
                    ns,
                    &[
                        "ethtool", "-K", dev, "tx", "off", "rx", "off", "gso", "off", "gro", "off",
                        "tso", "off",
                    ],
                )
                .is_ok_and(|o| o.status.success());
        }
        ok
    }

    /// Starts statewall in `fw` with `workers` workers (ports "outside" on f1, "inside" on
    /// f2) and the rules file `rules`, runs `body` with the running runtime, stops it.
    /// None (SKIP printed) when AF_XDP is refused here.
    fn with_statewall<T>(
        &self,
        test: &str,
        workers: usize,
        rules: Option<&std::path::Path>,
        body: impl FnOnce(&Runtime) -> T,
    ) -> Option<T> {
        let rules = rules
            .map(|p| format!("[rules]\nfile = \"{}\"\n", p.display()))
            .unwrap_or_default();
        let (f1, f2) = (&self.f1, &self.f2);
        let text = format!(
            "[dataplane]\nworkers = {workers}\npool_size = 2048\nnon_ip = \"pass-arp\"\n\
             [control]\nlisten = \"\"\n{rules}\
             [[port]]\nname = \"outside\"\nbackend = \"af_xdp\"\ninterface = \"{f1}\"\ndescriptors = 256\n\
             [[port]]\nname = \"inside\"\nbackend = \"af_xdp\"\ninterface = \"{f2}\"\ndescriptors = 256\n\
             [[pair]]\nnetwork = \"outside\"\nhost = \"inside\"\n"
        );
        let cfg = Config::parse(&text, "test").expect("config");
        let fw_path = format!("/var/run/netns/{}", self.fw);
        std::thread::scope(|s| {
            let (started_tx, started_rx) = mpsc::channel();
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let (rt_tx, rt_rx) = mpsc::channel::<Runtime>();
            s.spawn(move || {
                let f = std::fs::File::open(&fw_path).expect("netns file");
                // SAFETY: `f` is an open namespace file; setns changes only this thread's
                // network namespace (and the worker threads it starts inherit it).
                assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
                match Runtime::start(cfg, false) {
                    Ok(rt) => {
                        started_tx.send(Ok(())).unwrap();
                        rt_tx.send(rt).unwrap();
                        let _ = stop_rx.recv();
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
                    prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF: {e}"));
                    return None;
                }
                Err(e) => panic!("runtime start: {e}"),
            }
            let rt = rt_rx.recv().unwrap();
            let out = body(&rt);
            rt.shutdown();
            stop_tx.send(()).unwrap();
            Some(out)
        })
    }
}

#[test]
fn af_xdp_bump_in_the_wire_forwards_ping() {
    let test = "af_xdp_bump_in_the_wire_forwards_ping";
    let Some(b) = Bench::new(test, "p", 1, &["ping"]) else {
        return;
    };
    let Some((ping, xdp_shown)) = b.with_statewall(test, 1, None, |_rt| {
        let ping = b.exec(
            &b.h1,
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"],
        );
        let xdp_shown = Command::new("ip")
            .args(["-n", &b.fw, "link", "show", &b.f1])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("xdp"))
            .unwrap_or(false);
        (ping, xdp_shown)
    }) else {
        return;
    };
    let ping = ping.expect("ip netns exec ping");
    assert!(xdp_shown, "the XDP program is attached while running");
    assert!(
        ping.status.success(),
        "ping through statewall: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
}

/// Rules: h1 (behind "outside") may open connections to h2; replies come back as
/// ESTABLISHED; anything else is dropped.
const RULES: &str = "*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i outside -m conntrack --ctstate NEW -j ACCEPT
COMMIT
";

const SERVER: &str = "import socket
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('10.77.0.2',7100))
s.listen(64)
while True:
    c,_=s.accept()
    c.recv(10)
    c.sendall(b'answer')
    c.close()
";

const CLIENTS: &str = "import socket
ok=0
for i in range(24):
    try:
        s=socket.create_connection(('10.77.0.2',7100),timeout=3)
        s.sendall(b'q')
        if s.recv(10)==b'answer':
            ok+=1
        s.close()
    except Exception:
        pass
print(ok)
";

/// Two workers on two-queue veths: veth picks a frame's receive queue from the sender's
/// transmit queue, a per-socket choice that is not symmetric, so the two directions of a
/// connection often arrive at different workers. Every worker checks the owner of every
/// packet from such a port and hands strays to their owner: every TCP connection
/// completes, none of its packets is INVALID, and each lives in one shard.
#[test]
fn af_xdp_two_queues_keep_each_connection_on_its_owner() {
    let test = "af_xdp_two_queues_keep_each_connection_on_its_owner";
    let Some(b) = Bench::new(test, "q", 2, &["ethtool", "ss", "python3"]) else {
        return;
    };
    assert!(b.offloads_off(), "ethtool -K on the veths");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.v4");
    std::fs::write(&rules, RULES).unwrap();
    std::fs::write(dir.path().join("server.py"), SERVER).unwrap();
    std::fs::write(dir.path().join("clients.py"), CLIENTS).unwrap();
    let server_py = dir.path().join("server.py");
    let clients_py = dir.path().join("clients.py");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &b.h2, "python3"])
        .arg(&server_py)
        .spawn()
        .expect("python3");
    // Let the server listen.
    let t0 = std::time::Instant::now();
    while !b
        .exec(&b.h2, &["ss", "-Hltn", "sport = :7100"])
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(t0.elapsed().as_secs() < 10, "server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = b.with_statewall(test, 2, Some(&rules), |rt| {
        let o = b
            .exec(&b.h1, &["python3", clients_py.to_str().unwrap()])
            .expect("python3");
        let ok: u32 = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let ld = |f: &dyn Fn(&dataplane::worker::PublishedStats) -> u64| -> Vec<u64> {
            rt.workers.iter().map(|w| f(&w.stats)).collect()
        };
        let idx = |s| dataplane::worker::state_index(s);
        use dataplane::conntrack::CtState;
        let invalid = ld(&|s| s.by_state[idx(CtState::Invalid)].load(Ordering::Relaxed));
        let new = ld(&|s| s.by_state[idx(CtState::New)].load(Ordering::Relaxed));
        let handed = ld(&|s| s.handed_off.load(Ordering::Relaxed));
        (
            ok,
            invalid,
            new,
            handed,
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    });
    let _ = server.kill();
    let _ = server.wait();
    let Some((ok, invalid, new, handed, err)) = got else {
        return;
    };
    let detail = format!("INVALID {invalid:?}, NEW {new:?}, handed off {handed:?}: {err}");
    assert_eq!(ok, 24, "every connection completed ({detail})");
    assert_eq!(invalid.iter().sum::<u64>(), 0, "{detail}");
    // One NEW (the SYN) per connection, each on the shard that owns it.
    assert_eq!(new.iter().sum::<u64>(), 24, "{detail}");
    assert!(
        handed.iter().sum::<u64>() > 0,
        "veth spread directions over both queues, so some packets were handed over ({detail})"
    );
}
