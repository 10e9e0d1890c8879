//! The corpus of public-shaped rulesets in `tests/rulesets/` (see its SOURCES.md) and
//! the older ones in `testdata/`: each loads, or is refused with the reason this file
//! expects: a match statewall documents as impossible in a bypass fast path (owner,
//! socket, cgroup, rpfilter), or one that is not built yet (ipset sets, recent,
//! hashlimit, connlimit: the sets work). When one of those lands, its files load and
//! this test says to move them off the list. A second test checks every file with the
//! kernel's own `iptables-restore --test` in a throwaway network namespace.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Files refused today, with the words the refusal must contain.
const EXPECTED_REFUSALS: &[(&str, &str)] = &[
    // Impossible in a bypass fast path (no local sockets, no routing table).
    (
        "host-owner.rules.v4",
        "match \"-m owner\" needs the local socket",
    ),
    (
        "tproxy-socket.rules.v4",
        "match \"-m socket\" needs the local socket",
    ),
    (
        "calico-node.rules.v4",
        "match \"-m rpfilter\" needs a route lookup",
    ),
    // Not built yet: connlimit (issue 18).
    (
        "tor-relay.rules.v4",
        "match \"-m connlimit\" is not supported",
    ),
];

/// The sets of the ruleset at `p`: its sibling `NAME.ipsets` file (ipset save form)
/// when there is one, as the kernel test restores them first.
fn sets_for(p: &Path) -> crate::sets::SetRegistry {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let sets = crate::sets::SetRegistry::new();
    let file = p.with_file_name(format!(
        "{}.ipsets",
        name.split(".rules").next().unwrap_or(&name)
    ));
    if let Ok(text) = std::fs::read_to_string(&file) {
        sets.restore(&text, &file.display().to_string(), 0, true)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    sets
}

/// The ruleset at `p` with its sets.
fn load(p: &Path) -> Result<Ruleset, crate::ruleset::RulesetError> {
    Ruleset::from_file_with_sets(p, &sets_for(p))
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rulesets")
}

/// Every ruleset file of the corpus and of `testdata/`.
fn corpus_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        corpus_dir(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ruleset/testdata"),
    ] {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if n.ends_with(".v4") || n.ends_with(".v6") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ruleset_corpus_loads_or_is_refused_as_expected() {
    let files = corpus_files();
    let in_corpus = files.iter().filter(|p| p.starts_with(corpus_dir())).count();
    assert!(
        in_corpus >= 30,
        "only {in_corpus} rulesets in tests/rulesets"
    );
    let mut bad = Vec::new();
    let mut loaded = 0;
    for p in &files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let expected = EXPECTED_REFUSALS.iter().find(|(n, _)| *n == name);
        match (load(p), expected) {
            (Ok(_), None) => loaded += 1,
            (Ok(_), Some(_)) => {
                bad.push(format!("{name} now loads: take it off EXPECTED_REFUSALS"))
            }
            (Err(e), Some((_, want))) if e.message.contains(want) => {}
            (Err(e), Some((_, want))) => {
                bad.push(format!("{name}: refused with \"{e}\", expected \"{want}\""))
            }
            (Err(e), None) => bad.push(format!("{name}: {e}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(loaded + EXPECTED_REFUSALS.len(), files.len());
    // Each loaded ruleset prints back (iptables-save form) into text that loads again
    // into the same rules.
    for p in &files {
        let Ok(r) = load(p) else {
            continue;
        };
        let sets = sets_for(p);
        let again =
            crate::ruleset::parse_ruleset_with_sets(&r.dump(), "again", Some(r.family()), &sets)
                .unwrap_or_else(|e| panic!("{}: the dump does not load: {e}", p.display()));
        assert_eq!(again.dump(), r.dump(), "{}", p.display());
    }
}

#[test]
fn ruleset_corpus_passes_kernel_iptables_restore_test() {
    let test = "ruleset_corpus_passes_kernel_iptables_restore_test";
    if prereq::needs(test)
        .root()
        .netns()
        .tools(&["iptables-restore", "ip6tables-restore", "ipset"])
        .skip()
    {
        return;
    }
    let ns = format!("swrs{}", std::process::id());
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(ip(&["netns", "add", &ns]), "ip netns add {ns}");
    let mut bad = Vec::new();
    for p in corpus_files() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let tool = if name.ends_with(".v6") {
            "ip6tables-restore"
        } else {
            "iptables-restore"
        };
        // Sets a ruleset names are created first (the kernel refuses a missing set).
        let sets = p.with_file_name(format!(
            "{}.ipsets",
            name.split(".rules").next().unwrap_or(&name)
        ));
        if sets.exists() {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "ipset", "restore", "-exist", "-file"])
                .arg(&sets)
                .output()
                .expect("ipset runs");
            if !out.status.success() {
                bad.push(format!(
                    "{}: {}",
                    sets.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
        }
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, tool, "--test"])
            .stdin(Stdio::from(std::fs::File::open(&p).unwrap()))
            .output()
            .expect("iptables-restore runs");
        if !out.status.success() {
            bad.push(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    let _ = ip(&["netns", "del", &ns]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
