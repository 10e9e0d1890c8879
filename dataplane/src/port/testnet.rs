//! Test support for the live backends (af_packet, af_xdp): two network namespaces joined
//! by a veth pair, created per test with unique names and deleted on drop.

// `unsafe` is denied crate-wide (lib.rs); this backend needs it for namespace and veth set-up for tests (setns, unshare).
#![allow(unsafe_code)]

use super::{MbufPool, Port};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Two network namespaces joined by a veth pair; deleted on drop, even on failure.
pub(crate) struct Netns {
    pub(crate) a: String,
    pub(crate) b: String,
}

/// Runs `ip ARGS`; true on success.
pub(crate) fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// None (after [`prereq`] printed SKIP, or failed the test in CI) when not root or
    /// `ip netns` does not work.
    pub(crate) fn new(test: &str) -> Option<Self> {
        Self::with_queues(test, 1)
    }

    /// As [`Netns::new`], with `queues` rx and tx queues on each veth end.
    pub(crate) fn with_queues(test: &str, queues: u16) -> Option<Self> {
        if prereq::needs(test).netns().skip() {
            return None;
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let ns = Netns {
            a: format!("swa{id}"),
            b: format!("swb{id}"),
        };
        let (va, vb) = (ns.veth_a(), ns.veth_b());
        let q = queues.max(1).to_string();
        for ok in [
            ip(&["netns", "add", &ns.a]),
            ip(&["netns", "add", &ns.b]),
            ip(&[
                "link",
                "add",
                &va,
                "netns",
                &ns.a,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &vb,
                "netns",
                &ns.b,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
            ]),
            // No IPv6 addresses: no neighbour discovery noise on the link.
            ip(&["-n", &ns.a, "link", "set", &va, "addrgenmode", "none"]),
            ip(&["-n", &ns.b, "link", "set", &vb, "addrgenmode", "none"]),
            ip(&["-n", &ns.a, "link", "set", &va, "up"]),
            ip(&["-n", &ns.b, "link", "set", &vb, "up"]),
        ] {
            assert!(ok, "{test}: cannot create the namespaces and veth pair");
        }
        Some(ns)
    }

    /// The veth end in namespace `a`.
    pub(crate) fn veth_a(&self) -> String {
        format!("v{}", &self.a[..self.a.len().min(14)])
    }

    /// The veth end in namespace `b`.
    pub(crate) fn veth_b(&self) -> String {
        format!("v{}", &self.b[..self.b.len().min(14)])
    }

    /// Runs `f` on a thread inside namespace `ns` (sockets, BPF links and interface
    /// lookups made there keep that namespace) and returns its result.
    pub(crate) fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns file");
            // SAFETY: `file` is an open namespace file; setns only changes this thread's
            // network namespace, and this thread exits right after `f`.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in netns")
    }

    /// `ip -n NS link show DEV` output.
    pub(crate) fn link_show(&self, ns: &str, dev: &str) -> String {
        Command::new("ip")
            .args(["-n", ns, "link", "show", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

/// Sends `frames` (copied into buffers of `pool`) on queue 0 of `port`, retrying for up
/// to 2 s; returns how many were sent (the unsent buffers go back to the pool).
pub(crate) fn send_all<P: Port>(port: &mut P, pool: &mut MbufPool, frames: &[Vec<u8>]) -> usize {
    let mut pkts = Vec::with_capacity(frames.len());
    for f in frames {
        let mut m = pool.get().unwrap();
        m.copy_from(f);
        pkts.push(m);
    }
    let mut sent = 0;
    let t0 = Instant::now();
    while !pkts.is_empty() && t0.elapsed() < Duration::from_secs(2) {
        sent += port.tx_burst(0, &mut pkts, pool);
    }
    pool.put_all(&mut pkts);
    sent
}

/// Receives from every queue of `port` until `want` frames ending in `marker` arrived or
/// `ms` passed; returns (queue, frame) pairs in arrival order.
pub(crate) fn receive<P: Port + ?Sized>(
    port: &mut P,
    pool: &mut MbufPool,
    want: usize,
    ms: u64,
    marker: &[u8],
) -> Vec<(u16, Vec<u8>)> {
    let mut got = Vec::new();
    let mut out = Vec::with_capacity(32);
    let t0 = Instant::now();
    while got.len() < want && t0.elapsed() < Duration::from_millis(ms) {
        let mut any = false;
        for q in port.queue_range() {
            if port.rx_burst(q, pool, &mut out, 32) > 0 {
                any = true;
            }
            for m in out.drain(..) {
                if m.data().ends_with(marker) {
                    got.push((q, m.data().to_vec()));
                }
                pool.put(m);
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}
