//! IP sets end to end: `[sets] files` restored at start, `-m set` and `-j SET` rules on
//! live pktgen traffic, and `statewall ctl set …` changing sets without a reload.

mod common;
use common::*;

const SETS: &str = "create bl hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
create seen hash:net family inet hashsize 1024 maxelem 65536\n\
create spare hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
add spare 192.168.100.1\n";

const RULES: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m set --match-set bl dst -j DROP\n\
-A FORWARD -i inside -j SET --add-set seen src --exist\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT\n\
COMMIT\n";

/// Packets counted on FORWARD rule 1 (the set's DROP).
fn drops(sw: &Sw) -> u64 {
    let l = sw.ok(&["rules", "list"]);
    let line = l
        .lines()
        .find(|x| x.trim_start().starts_with("1 ") && x.contains("match-set bl dst"))
        .unwrap_or_else(|| panic!("no set rule in\n{l}"));
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap_or(u64::MAX)
}

fn start_with_sets() -> (Sw, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sets.save");
    std::fs::write(&f, SETS).unwrap();
    let sw = start(
        RULES,
        &format!("[sets]\nfiles = [{:?}]\n", f.display().to_string()),
    );
    (sw, dir)
}

#[test]
fn sets_change_at_runtime_without_a_reload() {
    let (sw, _d) = start_with_sets();
    sw.wait_traffic();
    let listing = sw.ok(&["set", "list", "bl"]);
    assert!(listing.contains("Name: bl\nType: hash:ip\n"), "{listing}");
    assert!(listing.contains("References: 1"), "{listing}");
    assert_eq!(drops(&sw), 0);
    assert_eq!(sw.metric("statewall_set_elements{set=\"spare\"}"), 1.0);
    assert_eq!(
        sw.metric("statewall_set_changes_lost_total{set=\"seen\"}"),
        0.0
    );
    sw.ok(&["set", "add", "bl", "192.168.100.1", "timeout", "600"]);
    assert_eq!(
        sw.ok(&["set", "test", "bl", "192.168.100.1"]),
        "192.168.100.1 is in set bl.\n"
    );
    sw.wait(20, "drops by the set rule", |s| drops(s) > 0);
    let err = sw.ctl(&["set", "add", "bl", "192.168.100.1"]).unwrap_err();
    assert!(err.contains("already in the set"), "{err}");
    sw.ok(&["set", "add", "bl", "192.168.100.1", "-exist"]);
    sw.ok(&["set", "del", "bl", "192.168.100.1"]);
    let err = sw.ctl(&["set", "test", "bl", "192.168.100.1"]).unwrap_err();
    assert!(err.contains("is NOT in set bl"), "{err}");
    // Swap brings the spare set's element in under the rule's name.
    sw.ok(&["set", "swap", "bl", "spare"]);
    assert!(sw
        .ok(&["set", "test", "bl", "192.168.100.1"])
        .contains("is in set"));
    sw.ok(&["set", "flush", "bl"]);
    assert_eq!(
        sw.rt
            .reloads
            .generation
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "no ruleset reload happened"
    );
    let err = sw.ctl(&["set", "destroy", "bl"]).unwrap_err();
    assert!(err.contains("in use"), "{err}");
    sw.ok(&["set", "create", "tmp", "hash:net", "family", "inet6"]);
    sw.ok(&["set", "add", "tmp", "2001:db8::/32"]);
    assert!(sw
        .ok(&["set", "save", "tmp"])
        .contains("add tmp 2001:db8::/32\n"));
    sw.ok(&["set", "destroy", "tmp"]);
    assert!(sw
        .ctl(&["set", "list", "tmp"])
        .unwrap_err()
        .contains("does not exist"));
}

#[test]
fn set_target_adds_from_the_workers() {
    let (sw, _d) = start_with_sets();
    sw.wait_traffic();
    sw.wait(20, "clients in the seen set", |s| {
        let l = s.ok(&["set", "list", "seen"]);
        l.lines()
            .find_map(|x| x.strip_prefix("Number of entries: "))
            .is_some_and(|n| n.parse::<u64>().unwrap() > 0)
    });
    let l = sw.ok(&["set", "list", "seen"]);
    assert!(
        l.contains("\n10.0."),
        "the pktgen clients are 10.0.0.0/8:\n{l}"
    );
}

#[test]
fn rules_naming_a_missing_set_are_refused() {
    let (sw, d) = start_with_sets();
    let bad = d.path().join("bad.rules");
    std::fs::write(
        &bad,
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m set --match-set nosuch src -j DROP\nCOMMIT\n",
    )
    .unwrap();
    let err = sw
        .ctl(&["rules", "replace", bad.to_str().unwrap()])
        .unwrap_err();
    assert!(
        err.contains("bad.rules:3:31: set \"nosuch\" does not exist"),
        "{err}"
    );
    let err = sw
        .ctl(&[
            "set",
            "restore",
            "-f",
            d.path().join("missing").to_str().unwrap(),
        ])
        .unwrap_err();
    assert!(err.contains("reading"), "{err}");
    let f = d.path().join("more.save");
    std::fs::write(&f, "add bl 10.1.1.1\nadd bl 10.1.1.2\nadd bl 10.1.1.300\n").unwrap();
    let err = sw
        .ctl(&["set", "restore", "-f", f.to_str().unwrap()])
        .unwrap_err();
    assert!(
        err.contains("more.save:3: add bl: bad address \"10.1.1.300\""),
        "{err}"
    );
    assert!(
        sw.ctl(&["set", "test", "bl", "10.1.1.1"]).is_err(),
        "the batch is all or nothing"
    );
}

#[test]
fn a_bad_sets_file_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.save");
    std::fs::write(&f, "create a hash:ip\nadd a 10.0.0.1 frob 3\n").unwrap();
    let mut cfg = statewall::config::Config::embedded();
    cfg.sets.files = vec![f];
    let e = statewall::runtime::load_sets(&cfg).unwrap_err().to_string();
    assert!(e.starts_with("sets.files[0]: "), "{e}");
    assert!(
        e.contains("s.save:2: add a 10.0.0.1: unknown option \"frob\""),
        "{e}"
    );
}

#[test]
fn replay_applies_set_target_changes_before_the_next_packet() {
    use dataplane::packet::build::PacketSpec;
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("s.save");
    std::fs::write(&sets, "create seen hash:ip timeout 60\n").unwrap();
    let rules = dir.path().join("r.rules.v4");
    std::fs::write(
        &rules,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -p tcp --dport 22 -m set --match-set seen src -j DROP\n\
-A FORWARD -p tcp --dport 22 -j SET --add-set seen src --timeout 2\nCOMMIT\n",
    )
    .unwrap();
    let syn = |port: u16| {
        PacketSpec::tcp(
            format!("10.0.0.1:{port}").parse().unwrap(),
            "192.0.2.1:22".parse().unwrap(),
            dataplane::packet::tcp_flags::SYN,
            1,
            0,
        )
        .to_vec()
    };
    // t = 0..3 s: the first adds the source (2 s timeout), the next two are dropped by
    // it (the element lives through its deadline, as in Linux), the fourth comes after.
    let pcap = dir.path().join("in.pcap");
    write_pcap(&pcap, &[syn(1000), syn(1001), syn(1002), syn(1003)]);
    let o = std::process::Command::new(bin())
        .args(["replay", "--format", "jsonl", "--pcap"])
        .arg(&pcap)
        .arg("--rules")
        .arg(&rules)
        .arg("--sets")
        .arg(&sets)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["verdict"].to_string())
        .collect();
    assert_eq!(
        verdicts,
        ["\"ACCEPT\"", "\"DROP\"", "\"DROP\"", "\"ACCEPT\""],
        "{verdicts:?}"
    );
}
