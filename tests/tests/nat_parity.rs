//! Frame-by-frame NAT parity with a Linux router (issue 17).
//!
//! `tests/oracle/captures/nat/` holds NAT captures (MASQUERADE, SNAT with ranges and
//! forced clashes, DNAT, NETMAP, ICMP errors through NAT, FTP through SNAT and DNAT,
//! NAT66) with their iptables-save rulesets, and `tests/oracle/expected/nat/` the frames
//! a Linux router running the same rules emitted for each input packet (recorded by
//! `tests/oracle/linux_nat_oracle.py` in network namespaces; `run_nat_all.py --check`
//! re-runs it live). No root needed here: this runs every capture through
//! `statewall replay --out` and compares the output frames with the kernel's using
//! `tests/oracle/compare_nat.py` (byte for byte after normalising MACs and TTL/hop
//! limit; values the kernel picks at random are checked by property). A difference not
//! listed in `tests/oracle/DIVERGENCES.md` fails the test with a per-capture report.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn oracle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oracle")
}

/// The comparison logic itself, without statewall: the kernel's output against itself
/// (must agree), against copies that differ only in what a bridge may do differently
/// (MACs, TTL: must agree), against corrupted copies (a flipped byte, a missing, extra
/// or misrouted frame, a changed port: must fail), and, for the captures with a random
/// choice, against another valid choice (must agree) and invalid ones (out of range,
/// the clashing value, inconsistent within a flow, bad checksum: must fail).
#[test]
fn nat_compare_logic_self_test() {
    let test = "nat_compare_logic_self_test";
    if statewall_e2e::prereq::needs(test).python3().skip() {
        return;
    }
    let r = Command::new(statewall_e2e::python3())
        .arg(oracle().join("compare_nat.py"))
        .arg("--self-test")
        .output()
        .expect("python3 runs compare_nat.py");
    let stdout = String::from_utf8_lossy(&r.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&r.stderr));
    assert!(r.status.success(), "compare_nat.py --self-test failed");
    assert!(
        stdout.contains("compare_nat self-test:") && stdout.contains(" 0 failure(s)"),
        "unexpected self-test output"
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs every NAT capture through `statewall replay` and compares its output frames
/// with the Linux router's.
#[test]
fn replay_nat_matches_the_linux_router_frame_by_frame() {
    let test = "replay_nat_matches_the_linux_router_frame_by_frame";
    if statewall_e2e::prereq::needs(test).python3().skip() {
        return;
    }
    let dir = oracle();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("captures/nat/manifest.json")).unwrap(),
    )
    .unwrap();
    let bin = statewall_e2e::statewall_bin();
    let out = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    let mut captures = 0;
    for c in manifest["captures"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        // An iptables-save file is one family's (the oracle loads the same text with
        // ip6tables-restore for the NAT66 captures): the name says which, as
        // `Ruleset::from_file` reads it.
        let family = if name.contains("nat66") { "v6" } else { "v4" };
        let rules = out.path().join(format!("{name}.rules.{family}"));
        std::fs::write(&rules, c["rules"].as_str().unwrap()).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("replay")
            .arg("--pcap")
            .arg(dir.join("captures/nat").join(c["file"].as_str().unwrap()))
            .arg("--rules")
            .arg(&rules)
            .arg("--format")
            .arg("jsonl")
            .arg("--out")
            .arg(out.path().join(format!("{name}.pcap")));
        for cidr in strings(&c["inside"]) {
            cmd.arg("--inside").arg(cidr);
        }
        for a in strings(&c["masquerade_addr"]) {
            cmd.arg("--masquerade-addr").arg(a);
        }
        for a in strings(&c["local_addr"]) {
            cmd.arg("--local-addr").arg(a);
        }
        let r = cmd.output().expect("statewall replay runs");
        if !r.status.success() {
            failed.push(format!(
                "{name}: statewall replay failed: {}",
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        captures += 1;
    }
    assert!(
        captures >= 20,
        "expected ≥ 20 NAT captures, found {captures}"
    );
    let r = Command::new(statewall_e2e::python3())
        .arg(dir.join("compare_nat.py"))
        .arg(dir.join("expected/nat"))
        .arg(out.path())
        .arg("--divergences")
        .arg(dir.join("DIVERGENCES.md"))
        .output()
        .expect("python3 runs compare_nat.py");
    println!(
        "nat parity: {captures} captures\n{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    // The comparison's verdict per capture: "ok   NAME: ..." or "FAIL NAME: ...".
    let report = String::from_utf8_lossy(&r.stdout);
    let mut mismatched: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .filter_map(|l| l.split(':').next())
        .collect();
    mismatched.sort_unstable();
    assert!(
        failed.is_empty(),
        "statewall replay failed:{}",
        failed
            .iter()
            .map(|f| format!("\n  {f}"))
            .collect::<String>()
    );
    // Every capture outside NOT_YET_BUILT must match; every one in it must still
    // differ, so that the day its feature lands the list has to shrink.
    assert_eq!(
        mismatched, NOT_YET_BUILT,
        "statewall's NAT output against the Linux router's (report above): every capture \
         outside NOT_YET_BUILT must match, and every one in it must still differ"
    );
    if r.status.success() {
        assert!(
            NOT_YET_BUILT.is_empty(),
            "compare_nat.py passed but mismatches were expected"
        );
    }
}

/// Captures whose feature statewall does not have yet (none: FTP through NAT, the last
/// one, landed with nf_nat_ftp's payload rewrite and seqadj).
const NOT_YET_BUILT: &[&str] = &[];
