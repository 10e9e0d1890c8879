//! NAT end to end with real programs (issue 17), two workers, through a statewall pair
//! whose outside port has the address `10.77.N.103` (nobody owns it: the outside host
//! reaches it at the inside host's MAC, so the frames cross the bump in the wire, where
//! statewall translates them):
//!
//! * lftp inside fetching files from vsftpd outside through MASQUERADE, active (PORT: the
//!   command grows by two bytes, "10,77,N,1" -> "10,77,N,103", so every later segment of
//!   the control connection needs its sequence numbers adjusted) and passive (PASV and
//!   EPSV: the data connection gets the master's source NAT), under a strict ruleset
//!   where every data connection must be RELATED. vsftpd refuses a PORT address or a
//!   passive data connection from another address than the control connection's, so a
//!   wrong rewrite fails the transfer. The bytes are compared. Once on af_packet, once
//!   on af_xdp.
//! * a DNAT port forward: curl outside to 10.77.N.103:8080 reaches a web server inside.
//! * traceroute inside to a host two hops away (behind the outside host, which routes):
//!   the ICMP time-exceeded of hop 1 and the port-unreachable of hop 2 come back to the
//!   masquerade address and are translated back (outer and quoted headers).

use statewall_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HELPER: &str = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
COMMIT
";

const MASQ: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o outside -j MASQUERADE
COMMIT
";

/// Only the FTP control connection (and, for traceroute, UDP) may open as NEW from the
/// inside; data connections must be RELATED.
const STRICT: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i inside -o outside -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i inside -o outside -p udp -m conntrack --ctstate NEW -j ACCEPT
COMMIT
";

/// A running `statewall run` (killed on drop) and its working directory.
struct Wall {
    child: Option<Child>,
    api: String,
    dir: tempfile::TempDir,
}

impl Drop for Wall {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

impl Wall {
    fn err(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("statewall.err")).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_request(&self.api, "GET", "/metrics", "")
            .map(|x| x.1)
            .unwrap_or_default()
    }

    fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    fn logs(&self) -> String {
        let m = self.metrics();
        let extra: String = m
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && (l.contains("invalid") || l.contains("handoff") || l.contains("handed"))
                    && !l.ends_with(" 0")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "statewall stderr:\n{}\nmetrics:\n{}{extra}",
            self.err(),
            interesting(&m)
        )
    }
}

/// The masquerade (and DNAT public) address of a topology: `10.77.N.103`.
fn public(topo: &Topology) -> String {
    format!("{}.103", topo.inside_ip.rsplit_once('.').unwrap().0)
}

/// Starts statewall with `workers` workers on `backend` ports (outside port address
/// [`public`]), `rules`; points the outside host's neighbour entry for the public
/// address at the inside host. None (SKIP printed) when af_xdp is refused by the kernel.
fn start(topo: &Topology, test: &str, backend: &str, workers: usize, rules: &str) -> Option<Wall> {
    let dir = tempfile::Builder::new()
        .prefix("statewall-e2e-natp-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::write(d.join("rules.v4"), rules).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let xdp = if backend == "af_xdp" {
        "descriptors = 256\n"
    } else {
        ""
    };
    let config = format!(
        "[dataplane]\nworkers = {workers}\nnon_ip = \"pass-arp\"\n\n\
[[port]]\nname = \"inside\"\nbackend = \"{backend}\"\ninterface = \"{}\"\n{xdp}\n\
[[port]]\nname = \"outside\"\nbackend = \"{backend}\"\ninterface = \"{}\"\n{xdp}address = [\"{}\"]\n\n\
[[pair]]\nmode = \"forward\"\nnetwork = \"outside\"\nhost = \"inside\"\n\n\
[rules]\nfile = \"rules.v4\"\n\n[control]\nlisten = \"{api}\"\nsocket = \"{}\"\nstats_interval = 0\n",
        topo.fw_in,
        topo.fw_out,
        public(topo),
        d.join("control.sock").display(),
    );
    let cfg = d.join("statewall.toml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(statewall_bin())
        .args(["run", "--duration", "300", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(d.join("statewall.out")).unwrap())
        .stderr(std::fs::File::create(d.join("statewall.err")).unwrap())
        .spawn()
        .unwrap();
    let mut w = Wall {
        child: Some(child),
        api,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        http_request(&w.api, "GET", "/api/v1/status", ""),
        Ok((200, _))
    ) {
        if let Some(Ok(Some(st))) = w.child.as_mut().map(|c| c.try_wait()) {
            let err = w.err();
            if backend == "af_xdp"
                && (err.contains("Operation not permitted") || err.contains("not supported"))
            {
                prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF: {err}"));
                return None;
            }
            panic!("{test}: statewall exited ({st}):\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "{test}: statewall did not come up:\n{}",
            w.err()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mac = must(&[
        "ip",
        "netns",
        "exec",
        &topo.inside_ns,
        "cat",
        &format!("/sys/class/net/{}/address", topo.in_veth),
    ]);
    must(&[
        "ip",
        "netns",
        "exec",
        &topo.outside_ns,
        "ip",
        "neigh",
        "replace",
        &public(topo),
        "lladdr",
        mac.trim(),
        "dev",
        &topo.out_veth,
        "nud",
        "permanent",
    ]);
    Some(w)
}

/// Recreates the topology's two veth pairs with `q` rx/tx queues each (same names and
/// addresses, offloads off), for af_xdp with several workers.
fn requeue(topo: &Topology, q: u16) {
    let q = q.to_string();
    for (ns, v, fw, ip, ip6) in [
        (
            &topo.inside_ns,
            &topo.in_veth,
            &topo.fw_in,
            &topo.inside_ip,
            &topo.inside_ip6,
        ),
        (
            &topo.outside_ns,
            &topo.out_veth,
            &topo.fw_out,
            &topo.outside_ip,
            &topo.outside_ip6,
        ),
    ] {
        must(&["ip", "link", "del", fw]);
        must(&[
            "ip",
            "link",
            "add",
            fw,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            v,
            "netns",
            ns,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]);
        let _ = run_timeout(
            5,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{fw}.disable_ipv6=1"),
            ],
        );
        let off = [
            "tx", "off", "rx", "off", "gso", "off", "gro", "off", "tso", "off",
        ];
        let mut e = vec!["ethtool", "-K", fw.as_str()];
        e.extend_from_slice(&off);
        must(&e);
        must(&["ip", "link", "set", fw, "up"]);
        let x = |args: &[&str]| {
            let mut a = vec!["ip", "netns", "exec", ns.as_str()];
            a.extend_from_slice(args);
            must(&a)
        };
        let mut e = vec!["ethtool", "-K", v.as_str()];
        e.extend_from_slice(&off);
        x(&e);
        x(&["ip", "addr", "add", &format!("{ip}/24"), "dev", v]);
        x(&["ip", "addr", "add", &format!("{ip6}/64"), "dev", v, "nodad"]);
        x(&["ip", "link", "set", v, "up"]);
    }
}

/// vsftpd outside, anonymous, strict about data connection addresses (its defaults:
/// `port_promiscuous=NO`, `pasv_promiscuous=NO`), serving `files`.
fn start_vsftpd(topo: &Topology, w: &Wall, files: &[(&str, &[u8])]) -> Background {
    let d = w.dir.path();
    // vsftpd drops privileges to `ftp` and chroots: the tree must be traversable and the
    // anonymous root not writable.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = d.join("ftproot");
    std::fs::create_dir_all(&root).unwrap();
    for (name, body) in files {
        std::fs::write(root.join(name), body).unwrap();
        std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::create_dir_all("/var/run/vsftpd/empty").unwrap();
    let conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\nlisten_port=21\nbackground=NO\n\
anonymous_enable=YES\nno_anon_password=YES\nanon_root={root}\nlocal_enable=NO\nwrite_enable=NO\n\
pasv_enable=YES\npasv_min_port=30000\npasv_max_port=30999\nport_enable=YES\n\
connect_from_port_20=YES\nseccomp_sandbox=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\n\
xferlog_enable=YES\nvsftpd_log_file={log}\nlog_ftp_protocol=YES\n",
        ip = topo.outside_ip,
        root = root.display(),
        log = d.join("vsftpd.log").display(),
    );
    let conf_path = d.join("vsftpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let bg = topo.spawn_in(
        &topo.outside_ns,
        200,
        d,
        d,
        "vsftpd",
        &["vsftpd", conf_path.to_str().unwrap()],
    );
    topo.wait_tcp_listen(&topo.outside_ns, 21, 10);
    bg
}

/// Pseudo-random bytes (xorshift), so a shifted or dropped segment shows.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The lftp transfers: (mode, lftp settings).
const FTP_MODES: [(&str, &str); 3] = [
    ("PORT", "set ftp:passive-mode off"),
    ("PASV", "set ftp:passive-mode on; set ftp:prefer-epsv no"),
    ("EPSV", "set ftp:passive-mode on; set ftp:prefer-epsv yes"),
];

fn lftp_through_masquerade(test: &str, backend: &str) {
    let mut needs = e2e_needs(test).tools(&["vsftpd", "lftp"]);
    if backend == "af_xdp" {
        needs = needs.af_xdp();
    }
    let Some(topo) = Topology::for_test(test, needs) else {
        return;
    };
    if backend == "af_xdp" {
        // One AF_XDP socket per worker and queue: the veths need two queues. veth
        // places frames by the sender's queue, not by flow, so packets are handed
        // between the workers here (af_packet's fanout places them on the owner).
        requeue(&topo, 2);
    }
    let Some(w) = start(&topo, test, backend, 2, &format!("{HELPER}{MASQ}{STRICT}")) else {
        return;
    };
    let big = bytes(300_000, 0x5eed);
    let small = b"a second file over the same control connection\n".to_vec();
    let _ftpd = start_vsftpd(&topo, &w, &[("big.bin", &big), ("small.txt", &small)]);
    let out = w.dir.path().join("got");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut report = String::new();
    for (mode, settings) in FTP_MODES {
        let rel0 = w.metric(r#"statewall_packets_total{state="RELATED"}"#);
        let (a, b) = (
            out.join(format!("{mode}-big")),
            out.join(format!("{mode}-small")),
        );
        // Two transfers on one control connection: the second command comes after the
        // first rewrite, so it (and its replies) travel with adjusted numbers.
        let script = format!(
            "set net:timeout 5; set net:max-retries 1; set net:reconnect-interval-base 1; \
             {settings}; get big.bin -o {}; get small.txt -o {}; bye",
            a.display(),
            b.display()
        );
        let o = topo.inside(
            40,
            &["lftp", "-u", "anonymous,x", "-e", &script, &topo.outside_ip],
        );
        let rel = w.metric(r#"statewall_packets_total{state="RELATED"}"#) - rel0;
        report += &format!("{mode}: exit {:?}, RELATED +{rel}\n", o.status.code());
        let vlog = std::fs::read_to_string(w.dir.path().join("vsftpd.log")).unwrap_or_default();
        assert!(
            o.status.success()
                && std::fs::read(&a).ok().as_deref() == Some(&big[..])
                && std::fs::read(&b).ok().as_deref() == Some(&small[..]),
            "{test}: lftp {mode} through MASQUERADE: {}\n{report}vsftpd log:\n{vlog}\n{}",
            show(&o),
            w.logs()
        );
        assert!(
            rel >= 2.0,
            "{test}: {mode}: the data connections were not RELATED\n{}",
            w.logs()
        );
    }
    // The server only ever saw the public address.
    let vlog = std::fs::read_to_string(w.dir.path().join("vsftpd.log")).unwrap_or_default();
    assert!(
        vlog.contains(&format!("Client \"{}\"", public(&topo)))
            && !vlog.contains(&format!("Client \"{}\"", topo.inside_ip)),
        "{test}: vsftpd log:\n{vlog}"
    );
    assert_eq!(
        w.metric(r#"statewall_drops_total{reason="helper"}"#),
        0.0,
        "{test}: {}",
        w.logs()
    );
    println!("{test}: ok\n{report}");
}

#[test]
fn nat_lftp_active_and_passive_through_masquerade_two_workers() {
    lftp_through_masquerade(
        "nat_lftp_active_and_passive_through_masquerade_two_workers",
        "af_packet",
    );
}

#[test]
fn nat_lftp_active_and_passive_through_masquerade_af_xdp() {
    lftp_through_masquerade(
        "nat_lftp_active_and_passive_through_masquerade_af_xdp",
        "af_xdp",
    );
}

#[test]
fn nat_dnat_port_forward_to_an_inside_server_two_workers() {
    let test = "nat_dnat_port_forward_to_an_inside_server_two_workers";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["curl"])) else {
        return;
    };
    let p = public(&topo);
    let rules = format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -d {p}/32 -i outside -p tcp -m tcp --dport 8080 -j DNAT --to-destination {}:80\n\
COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -d {}/32 -i outside -o inside -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT\n\
COMMIT\n",
        topo.inside_ip, topo.inside_ip
    );
    let Some(w) = start(&topo, test, "af_packet", 2, &rules) else {
        return;
    };
    let body = bytes(50_000, 7)
        .iter()
        .map(|b| b'a' + b % 26)
        .collect::<Vec<u8>>();
    let www = www_with(w.dir.path(), "f.txt", &body);
    let py = python3();
    let _srv = topo.spawn_in(
        &topo.inside_ns,
        60,
        &www,
        w.dir.path(),
        "http-in",
        &[&py, "-m", "http.server", "80", "--bind", &topo.inside_ip],
    );
    topo.wait_tcp_listen(&topo.inside_ns, 80, 10);
    // Several connections (different source ports land on both workers).
    for i in 0..4 {
        let url = format!("http://{p}:8080/f.txt");
        let o = topo.outside(15, &["curl", "-sS", "-m", "10", "-o", "-", &url]);
        assert!(
            o.status.success() && o.stdout == body,
            "{test}: request {i} through the port forward: {}\n{}",
            show(&o),
            w.logs()
        );
    }
    // The inside server saw the real client (no source NAT), and the direct address of
    // the server is not reachable from outside (the forward is the only way in).
    let log = std::fs::read_to_string(w.dir.path().join("http-in.err")).unwrap_or_default();
    assert!(
        log.matches(&format!("{} - -", topo.outside_ip)).count() >= 4,
        "{test}: server log:\n{log}"
    );
    let o = topo.outside(
        8,
        &[
            "curl",
            "-sS",
            "-m",
            "3",
            &format!("http://{}:80/f.txt", topo.inside_ip),
        ],
    );
    assert!(
        !o.status.success(),
        "{test}: the server was reachable directly"
    );
    // The bindings, as `conntrack -L --dst-nat INSIDE` shows them: the original tuple
    // to the public address and port, the reply from the inside server.
    let list = Command::new(statewall_bin())
        .args([
            "ctl",
            "--addr",
            &w.api,
            "conntrack",
            "list",
            "--dst-nat",
            &topo.inside_ip,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&format!("src={} dst={p} sport=", topo.outside_ip))
            && text.contains("dport=8080")
            && text.contains(&format!(
                "src={} dst={} sport=80",
                topo.inside_ip, topo.outside_ip
            )),
        "{test}: ctl conntrack list --dst-nat:\n{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
}

/// A third namespace two hops away: `far` (10.99.N.2) behind the outside host
/// (10.99.N.1 on its side), which forwards. Deleted on drop.
struct Far {
    ns: String,
}

impl Drop for Far {
    fn drop(&mut self) {
        let _ = run_timeout(10, &["ip", "netns", "del", &self.ns]);
    }
}

fn far_host(topo: &Topology, net: &str) -> Far {
    let ns = format!("{}-far", topo.inside_ns.trim_end_matches("-in"));
    must(&["ip", "netns", "add", &ns]);
    let far = Far { ns: ns.clone() };
    let (a, b) = (
        format!("{}f", &topo.out_veth[..topo.out_veth.len().min(13)]),
        format!("{}g", &topo.out_veth[..topo.out_veth.len().min(13)]),
    );
    let o = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", topo.outside_ns.as_str()];
        v.extend_from_slice(args);
        must(&v)
    };
    let f = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", ns.as_str()];
        v.extend_from_slice(args);
        must(&v)
    };
    o(&[
        "ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &ns,
    ]);
    o(&["ip", "addr", "add", &format!("{net}.1/24"), "dev", &a]);
    o(&["ip", "link", "set", &a, "up"]);
    o(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    f(&["ip", "link", "set", "lo", "up"]);
    f(&["ip", "addr", "add", &format!("{net}.2/24"), "dev", &b]);
    f(&["ip", "link", "set", &b, "up"]);
    f(&["ip", "route", "add", "default", "via", &format!("{net}.1")]);
    // The inside host reaches the far network through the outside host.
    must(&[
        "ip",
        "netns",
        "exec",
        &topo.inside_ns,
        "ip",
        "route",
        "add",
        &format!("{net}.0/24"),
        "via",
        &topo.outside_ip,
    ]);
    far
}

#[test]
fn nat_traceroute_through_masquerade_two_workers() {
    let test = "nat_traceroute_through_masquerade_two_workers";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["traceroute"])) else {
        return;
    };
    let net = format!("10.99.{}", topo.inside_ip.split('.').nth(2).unwrap());
    let _far = far_host(&topo, &net);
    let Some(w) = start(&topo, test, "af_packet", 2, &format!("{MASQ}{STRICT}")) else {
        return;
    };
    let dest = format!("{net}.2");
    // UDP probes (NEW from the inside: allowed); the errors about them are RELATED.
    let o = topo.inside(
        30,
        &["traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", &dest],
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let hops: Vec<&str> = text.lines().skip(1).collect();
    assert!(
        o.status.success()
            && hops.len() == 2
            && hops[0].split_whitespace().nth(1) == Some(topo.outside_ip.as_str())
            && hops[1].split_whitespace().nth(1) == Some(dest.as_str()),
        "{test}: traceroute through MASQUERADE: {}\n{}",
        show(&o),
        w.logs()
    );
    assert!(
        w.metric(r#"statewall_packets_total{state="RELATED"}"#) >= 2.0,
        "{test}: the ICMP errors were not RELATED\n{}",
        w.logs()
    );
    // The far host saw the probes from the public address.
    let list = Command::new(statewall_bin())
        .args([
            "ctl",
            "--addr",
            &w.api,
            "conntrack",
            "list",
            "--src-nat",
            &public(&topo),
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&format!("dst={}", public(&topo))) && listed.contains("udp"),
        "{test}: {listed}"
    );
}
