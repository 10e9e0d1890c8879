//! MASQUERADE over af_packet, end to end: curl from the inside namespace to a server in
//! the outside namespace through a statewall pair whose outside port has the address
//! 10.77.N.3. The server must see the client as 10.77.N.3 (not the inside host), the
//! reply must come back to the inside host, and `ctl conntrack list --src-nat` must
//! show the binding.

use statewall_e2e::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o outside -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i inside -o outside -j ACCEPT
COMMIT
";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nat_masquerade_curl_through_af_packet() {
    let test = "nat_masquerade_curl_through_af_packet";
    if e2e_needs(test).tools(&["curl"]).skip() {
        return;
    }
    let topo = Topology::new(test);
    let net = topo.inside_ip.rsplit_once('.').unwrap().0.to_string();
    let masq = format!("{net}.3");
    let dir = tempfile::Builder::new()
        .prefix("statewall-e2e-nat-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::write(d.join("rules.v4"), RULES).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[dataplane]\nworkers = 1\nnon_ip = \"pass-arp\"\n\n\
[[port]]\nname = \"inside\"\nbackend = \"af_packet\"\ninterface = \"{}\"\n\n\
[[port]]\nname = \"outside\"\nbackend = \"af_packet\"\ninterface = \"{}\"\naddress = [\"{masq}\"]\n\n\
[[pair]]\nmode = \"forward\"\nnetwork = \"outside\"\nhost = \"inside\"\n\n\
[rules]\nfile = \"rules.v4\"\n\n[control]\nlisten = \"{api}\"\nstats_interval = 0\n",
        topo.fw_in, topo.fw_out
    );
    let cfg = d.join("statewall.toml");
    std::fs::write(&cfg, config).unwrap();
    let sw = Kill(
        Command::new(statewall_bin())
            .args(["run", "--duration", "120", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("statewall.out")).unwrap())
            .stderr(std::fs::File::create(d.join("statewall.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !matches!(
        http_request(&api, "GET", "/api/v1/status", ""),
        Ok((200, _))
    ) {
        assert!(
            Instant::now() < deadline,
            "statewall did not come up: {}",
            std::fs::read_to_string(d.join("statewall.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nobody owns 10.77.N.3: the outside host reaches it at the inside host's MAC, so
    // the frames cross the bump in the wire, where statewall translates them back.
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
        &masq,
        "lladdr",
        mac.trim(),
        "dev",
        &topo.out_veth,
        "nud",
        "permanent",
    ]);
    let www = d.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("f.txt"), "masqueraded\n").unwrap();
    let py = python3();
    let server = topo.spawn_in(
        &topo.outside_ns,
        60,
        &www,
        d,
        "http-out",
        &[&py, "-m", "http.server", "8080", "--bind", &topo.outside_ip],
    );
    topo.wait_tcp_listen(&topo.outside_ns, 8080, 10);
    let url = format!("http://{}:8080/f.txt", topo.outside_ip);
    let o = topo.inside(15, &["curl", "-sS", "-m", "10", &url]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "masqueraded\n",
        "{}\nstatewall: {}",
        show(&o),
        std::fs::read_to_string(d.join("statewall.err")).unwrap_or_default()
    );
    // The server saw the masquerade address, never the inside host.
    let log = std::fs::read_to_string(d.join("http-out.err")).unwrap_or_default();
    assert!(log.contains(&format!("{masq} - -")), "server log:\n{log}");
    assert!(
        !log.contains(&format!("{} - -", topo.inside_ip)),
        "server log:\n{log}"
    );
    // The binding, as conntrack -L shows it.
    let list = Command::new(statewall_bin())
        .args([
            "ctl",
            "--addr",
            &api,
            "conntrack",
            "list",
            "--src-nat",
            &masq,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&format!("src={} dst={}", topo.outside_ip, masq)),
        "{text}\n{}",
        String::from_utf8_lossy(&list.stderr)
    );
    drop(server);
    drop(sw);
}
