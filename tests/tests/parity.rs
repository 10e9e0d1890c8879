//! State-by-state parity with the Linux kernel.
//!
//! `tests/oracle/` holds captures of every docs/CONNTRACK.md test case and a realistic mix,
//! and the state the kernel's conntrack gave each packet (recorded by
//! `tests/oracle/linux_oracle.py` in network namespaces; `run_all.py --check` re-runs it
//! live). This test runs every capture through `statewall replay` — the worker's own
//! pipeline, with the capture's timestamps and the same sysctls, notrack rules and FTP
//! helper ports — and compares every packet's state and direction with the kernel's
//! using `tests/oracle/compare.py`. Any difference not listed, with its reason, in
//! `tests/oracle/DIVERGENCES.md` fails the test.

use serde_json::Value;
use statewall::replay::{replay, ReplayArgs};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Translates the oracle's nft notrack rules into an iptables-restore raw table.
fn rules_for(notrack: &[Value]) -> String {
    let mut raw = String::from("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for r in notrack {
        let r = r.as_str().expect("notrack rule is a string");
        let w: Vec<&str> = r.split_whitespace().collect();
        match w.as_slice() {
            [proto, dir @ ("sport" | "dport"), port, "notrack"] => raw.push_str(&format!(
                "-A PREROUTING -p {proto} -m {proto} --{dir} {port} -j CT --notrack\n"
            )),
            _ => panic!("parity: cannot translate the oracle notrack rule {r:?}"),
        }
    }
    raw.push_str("COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
    raw
}

#[test]
fn replay_matches_the_linux_kernel_packet_by_packet() {
    let test = "replay_matches_the_linux_kernel_packet_by_packet";
    if statewall_e2e::prereq::needs(test).python3().skip() {
        return;
    }
    let oracle = root().join("tests/oracle");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(oracle.join("captures/manifest.json")).unwrap(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let kernel_dir = out.path().join("kernel");
    let sw_dir = out.path().join("statewall");
    std::fs::create_dir_all(&kernel_dir).unwrap();
    std::fs::create_dir_all(&sw_dir).unwrap();
    let mut captures = 0;
    let mut packets = 0;
    for c in manifest["captures"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let expected = oracle.join("expected").join(format!("{name}.jsonl"));
        if !expected.exists() {
            continue; // long captures the oracle run skipped
        }
        std::fs::copy(&expected, kernel_dir.join(format!("{name}.jsonl"))).unwrap();
        let rules = out.path().join(format!("{name}.rules"));
        std::fs::write(&rules, rules_for(c["notrack"].as_array().unwrap())).unwrap();
        let args = ReplayArgs {
            pcap: oracle.join("captures").join(c["file"].as_str().unwrap()),
            rules: Some(rules),
            sets: vec![],
            out: None,
            format: "jsonl".into(),
            mode: "forward".into(),
            inside: vec![],
            capacity: 4096,
            sysctls: c["sysctl"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
            ftp_ports: c["helper_ftp_port"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u16)
                .collect(),
            masquerade_addrs: vec![],
            local_addrs: vec![],
        };
        let mut buf = Vec::new();
        replay(&args, &mut buf).unwrap_or_else(|e| panic!("replay of {name} failed: {e:#}"));
        packets += buf.iter().filter(|&&b| b == b'\n').count();
        std::fs::write(sw_dir.join(format!("{name}.jsonl")), &buf).unwrap();
        captures += 1;
    }
    assert!(
        captures > 50,
        "expected the oracle's captures, found {captures}"
    );
    let r = Command::new(statewall_e2e::python3())
        .arg(oracle.join("compare.py"))
        .arg(&kernel_dir)
        .arg(&sw_dir)
        .arg("--divergences")
        .arg(oracle.join("DIVERGENCES.md"))
        .output()
        .expect("python3 runs compare.py");
    let stdout = String::from_utf8_lossy(&r.stdout);
    println!(
        "parity: {captures} captures, {packets} packets replayed\n{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        r.status.success(),
        "statewall disagrees with the Linux kernel (see the mismatches above)"
    );
}
