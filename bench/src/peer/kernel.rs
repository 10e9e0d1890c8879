//! The kernel peer: routing + nftables conntrack in a veth topology, against statewall's
//! af_packet backend on the same topology (full mode, root).

use crate::report::Row;
use crate::{Mode, Opts};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub(crate) fn sh(cmd: &str) -> Result<String, String> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "`{cmd}`: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).to_string())
}

pub(crate) fn rx_packets(ns: &str, dev: &str) -> u64 {
    sh(&format!(
        "ip netns exec {ns} cat /sys/class/net/{dev}/statistics/rx_packets"
    ))
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

pub(crate) fn kernel_peer(o: &Opts) -> Vec<Row> {
    let skip = |why: &str| {
        vec![Row {
            scenario: "peer kernel nft".into(),
            params: "skipped".into(),
            peer: why.into(),
            ..Default::default()
        }]
    };
    if o.mode != Mode::Full {
        return skip("full mode only (--full)");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root (network namespaces, nftables)");
    }
    if sh("command -v nft && command -v ip").is_err() {
        return skip("nft or ip not installed");
    }
    match kernel_peer_run(o.secs() * 1.5) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = kernel_teardown();
            skip(&format!("failed: {e}"))
        }
    }
}

pub(crate) fn kernel_teardown() -> Result<String, String> {
    sh("ip netns del swb-a 2>/dev/null; ip netns del swb-fw 2>/dev/null; ip netns del swb-b 2>/dev/null; true")
}

pub(crate) fn kernel_peer_run(secs: f64) -> Result<Vec<Row>, String> {
    kernel_teardown()?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.display();
    // a (10.99.1.2) -- veth fa/af -- fw -- veth fb/bf -- b (10.99.2.2)
    sh("ip netns add swb-a && ip netns add swb-fw && ip netns add swb-b \
        && ip link add af netns swb-a type veth peer name fa netns swb-fw \
        && ip link add bf netns swb-b type veth peer name fb netns swb-fw \
        && ip -n swb-a addr add 10.99.1.2/24 dev af && ip -n swb-a link set af up && ip -n swb-a link set lo up \
        && ip -n swb-b addr add 10.99.2.2/24 dev bf && ip -n swb-b link set bf up && ip -n swb-b link set lo up \
        && ip -n swb-fw link set fa up && ip -n swb-fw link set fb up \
        && ip -n swb-a route add default via 10.99.1.1 \
        && ip -n swb-a neigh replace 10.99.1.1 lladdr 02:00:00:00:99:01 dev af \
        && ip -n swb-fw link set fa address 02:00:00:00:99:01 \
        && ip -n swb-fw link set fa promisc on && ip -n swb-fw link set fb promisc on \
        && ip -n swb-b link set bf promisc on")?;
    // Checksum offload off, as for any veth statewall polls: with it on, frames from a
    // local stack carry partial checksums that conntrack (like the receiving hosts)
    // would call invalid.
    for (ns, dev) in [
        ("swb-a", "af"),
        ("swb-fw", "fa"),
        ("swb-fw", "fb"),
        ("swb-b", "bf"),
    ] {
        sh(&format!(
            "ip netns exec {ns} ethtool -K {dev} tx off rx off gso off gro off tso off >/dev/null 2>&1 || true"
        ))?;
    }
    let measure = |label: &str| -> Result<(f64, u64), String> {
        let r0 = rx_packets("swb-b", "bf");
        let out = sh(&format!(
            "ip netns exec swb-a {me} flood 10.99.2.2 {secs} 1024"
        ))?;
        std::thread::sleep(Duration::from_millis(200));
        let r1 = rx_packets("swb-b", "bf");
        let sent: u64 = out
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let _ = label;
        Ok(((r1 - r0) as f64 / secs, sent))
    };
    // Kernel: routing + nftables conntrack in swb-fw.
    sh("ip -n swb-fw addr add 10.99.1.1/24 dev fa && ip -n swb-fw addr add 10.99.2.1/24 dev fb \
        && ip netns exec swb-fw sysctl -qw net.ipv4.ip_forward=1 \
        && ip -n swb-fw neigh replace 10.99.2.2 lladdr $(ip -n swb-b -br link show bf | awk '{print $3}') dev fb")?;
    sh("ip netns exec swb-fw nft -f - <<'EOF'\ntable inet swb {\n chain forward_filter {\n  type filter hook forward priority 0; policy drop;\n  ct state established,related accept\n  ct state invalid drop\n  iifname \"fa\" ct state new accept\n }\n}\nEOF")?;
    let (k_pps, k_sent) = measure("kernel")?;
    // The kernel with NAT: the same, plus MASQUERADE out of fb (nft's nat hook).
    sh("ip netns exec swb-fw nft -f - <<'EOF'\ntable ip swbnat {\n chain post {\n  type nat hook postrouting priority 100; policy accept;\n  oifname \"fb\" masquerade\n }\n}\nEOF")?;
    let (kn_pps, kn_sent) = measure("kernel nat")?;
    // statewall: no kernel forwarding; af_packet on fa/fb with the same rules.
    sh("ip netns exec swb-fw nft flush ruleset && ip netns exec swb-fw sysctl -qw net.ipv4.ip_forward=0 \
        && ip -n swb-fw addr flush dev fa && ip -n swb-fw addr flush dev fb")?;
    let sw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/statewall");
    if !sw.exists() {
        return Err(format!(
            "{} not built (cargo build --release -p statewall)",
            sw.display()
        ));
    }
    let (s_pps, s_sent, summary) = statewall_on_veth(&sw, secs, false, &measure)?;
    let (sn_pps, sn_sent, sn_summary) = statewall_on_veth(&sw, secs, true, &measure)?;
    kernel_teardown()?;
    Ok(vec![
        Row {
            scenario: "peer kernel nft".into(),
            params: "veth, forward + nft ct, udp 1024 flows".into(),
            mpps: Some(k_pps / 1e6),
            peer: format!("received at sink; generator sent {k_sent}"),
            extra: json!({"pps": k_pps, "sent": k_sent}),
            ..Default::default()
        },
        Row {
            scenario: "statewall af_packet".into(),
            params: "same veth topology, 1 worker".into(),
            mpps: Some(s_pps / 1e6),
            peer: format!(
                "statewall/kernel = {:.2}x; sent {s_sent}; {summary}",
                s_pps / k_pps.max(1.0)
            ),
            extra: json!({"pps": s_pps, "sent": s_sent, "ratio_vs_kernel": s_pps / k_pps.max(1.0)}),
            ..Default::default()
        },
        Row {
            scenario: "peer kernel nft NAT".into(),
            params: "same, + nft masquerade out of fb".into(),
            mpps: Some(kn_pps / 1e6),
            peer: format!(
                "kernel NAT/no NAT = {:.2}x; generator sent {kn_sent}",
                kn_pps / k_pps.max(1.0)
            ),
            extra: json!({"pps": kn_pps, "sent": kn_sent, "ratio_nat_vs_plain": kn_pps / k_pps.max(1.0)}),
            ..Default::default()
        },
        Row {
            scenario: "statewall af_packet NAT".into(),
            params: "same veth topology, 1 worker, *nat MASQUERADE".into(),
            mpps: Some(sn_pps / 1e6),
            peer: format!(
                "statewall NAT/no NAT = {:.2}x; statewall/kernel with NAT = {:.2}x; sent {sn_sent}; {sn_summary}",
                sn_pps / s_pps.max(1.0),
                sn_pps / kn_pps.max(1.0)
            ),
            extra: json!({"pps": sn_pps, "sent": sn_sent,
                          "ratio_nat_vs_plain": sn_pps / s_pps.max(1.0),
                          "ratio_vs_kernel_nat": sn_pps / kn_pps.max(1.0)}),
            ..Default::default()
        },
    ])
}

/// Measures the sink's receive rate under one flood: (pps, packets sent).
type Measure<'a> = dyn Fn(&str) -> Result<(f64, u64), String> + 'a;

/// Runs `statewall run` on fa/fb (af_packet, one worker) with the kernel peer's filter
/// rules (and, with `nat`, MASQUERADE out of the outside port, whose address is given
/// in the config) and measures it; returns (pps at the sink, sent, summary line).
fn statewall_on_veth(
    sw: &Path,
    secs: f64,
    nat: bool,
    measure: &Measure<'_>,
) -> Result<(f64, u64, String), String> {
    let tag = if nat { "nat" } else { "plain" };
    let cfg = std::env::temp_dir().join(format!("statewall-bench-veth-{tag}.toml"));
    let rules = std::env::temp_dir().join(format!("statewall-bench-veth-{tag}.rules"));
    let mut text = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -m conntrack --ctstate INVALID -j DROP\n-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n");
    if nat {
        text.push_str("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n");
    }
    std::fs::write(&rules, text).map_err(|e| e.to_string())?;
    let address = if nat {
        "address = [\"10.99.2.1\"]\n"
    } else {
        ""
    };
    std::fs::write(&cfg, format!("[dataplane]\nworkers = 1\n[[port]]\nname = \"inside\"\nbackend = \"af_packet\"\ninterface = \"fa\"\n[[port]]\nname = \"outside\"\nbackend = \"af_packet\"\ninterface = \"fb\"\n{address}[[pair]]\nmode = \"forward\"\nnetwork = \"outside\"\nhost = \"inside\"\n[rules]\nfile = \"{}\"\n[control]\nlisten = \"\"\nsocket = \"\"\nstats_interval = 0\n", rules.display())).map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", "swb-fw"])
        .arg(sw)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--duration", &format!("{}", secs + 3.0)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1000));
    let s = measure(if nat { "statewall nat" } else { "statewall" });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or("")
        .trim()
        .to_string();
    let (pps, sent) = s?;
    Ok((pps, sent, summary))
}
