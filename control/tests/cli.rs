//! The `statewall` binary as a newcomer uses it.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_statewall"))
}

#[test]
fn run_with_no_config_shows_traffic_and_a_summary() {
    // The embedded default listens on 127.0.0.1:9469 and /run/statewall/control.sock;
    // move both so parallel tests and a statewall running on this machine don't collide.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("demo.toml");
    let sock = dir.path().join("control.sock");
    let text = statewall::config::EMBEDDED_DEFAULT.replace(
        "\"127.0.0.1:9469\"",
        &format!("\"127.0.0.1:0\"\nsocket = {:?}", sock.display().to_string()),
    );
    std::fs::write(&cfg, text).unwrap();
    let rules = dir.path().join("demo.rules");
    std::fs::write(&rules, statewall::config::DEMO_RULES).unwrap();
    let out = bin()
        .args(["run", "--duration", "2.2", "--config"])
        .arg(&cfg)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("NIC statistics"),
        "testpmd-style stats every second:\n{stdout}"
    );
    assert!(
        stdout.contains("RX-packets:")
            && stdout.contains("RX-missed:")
            && stdout.contains("RX-nombuf:")
    );
    let summary = stdout
        .lines()
        .find(|l| l.contains("summary:"))
        .expect("a summary line");
    let n: u64 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n > 1000, "packets flowed: {summary}");
    assert!(
        stdout.contains("ESTABLISHED"),
        "conntrack states are shown:\n{stdout}"
    );
}

#[test]
fn replay_prints_states_per_packet() {
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/oracle/captures/t03_close.pcap");
    let out = bin()
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    // docs/CONNTRACK.md T3: H, then FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT.
    let want = [
        ("NEW", "SYN_SENT"),
        ("ESTABLISHED", "SYN_RECV"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("ESTABLISHED", "FIN_WAIT"),
        ("ESTABLISHED", "CLOSE_WAIT"),
        ("ESTABLISHED", "LAST_ACK"),
        ("ESTABLISHED", "TIME_WAIT"),
    ];
    assert_eq!(lines.len(), want.len(), "{text}");
    for (l, (state, tcp)) in lines.iter().zip(want) {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((cols[2], cols[4]), (state, tcp), "line {l:?}");
    }
    let json = bin()
        .args(["replay", "--format", "jsonl", "--pcap"])
        .arg(&pcap)
        .output()
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&json.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["index"], 0);
    assert_eq!(first["ct_state"], "NEW");
    assert_eq!(first["ct_dir"], "ORIGINAL");
    assert_eq!(first["tcp_state"], "SYN_SENT");
    assert_eq!(first["verdict"], "ACCEPT");
}

#[test]
fn bad_inputs_are_refused_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.rules");
    std::fs::write(
        &rules,
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m foo -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let out = bin().args(["rules", "check"]).arg(&rules).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.rules:3:"), "file:line:column in {err}");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[port]]\nname='a'\nbackend='nic'\n").unwrap();
    let out = bin().args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port[0].backend"), "{err}");
}
