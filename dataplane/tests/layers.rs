//! The dataplane's layer rules, checked on the source: every `crate::<module>` path in
//! `dataplane/src` is an arrow from the file's top-level module to `<module>`, and the
//! arrows must follow the floors declared below (docs/ARCHITECTURE.md has the map).
//! The test fails on an arrow the table does not allow, on an arrow that runs up or
//! sideways, on a circle, and on a top-level module the table does not know.
//!
//! What counts as an arrow: `use crate::a::…`, `use crate::{a, b::…}` and any
//! `crate::a::…` path in code. Comments (doc links included) are not arrows. Tests count
//! too: a `#[cfg(test)]` module that reaches up would hide a circle behind a feature.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `(module, floor, the modules it may use)`. An arrow must point to a lower floor.
const LAYERS: &[(&str, u8, &[&str])] = &[
    // Floor 0: the CPU intrinsics and the packet views; they use nothing.
    ("arch", 0, &[]),
    ("packet", 0, &[]),
    // Floor 1: who owns a flow, connection tracking, reassembly: packets only (and the
    // table's prefetch).
    ("steer", 1, &["packet"]),
    ("conntrack", 1, &["packet", "arch"]),
    ("defrag", 1, &["packet"]),
    // IP sets: packets only (the ruleset matches them; the control plane changes them).
    ("sets", 1, &["packet"]),
    // Floor 2: the ruleset matches conntrack states; ports steer to queues.
    ("ruleset", 2, &["packet", "conntrack", "sets"]),
    ("port", 2, &["packet", "steer"]),
    // Floor 3: the worker puts them together.
    (
        "worker",
        3,
        &[
            "packet",
            "steer",
            "conntrack",
            "defrag",
            "ruleset",
            "sets",
            "port",
            "arch",
        ],
    ),
];

/// Arrows that only tests may draw (`tests.rs` files and `tests/` folders), still
/// pointing down: a test of the generator that runs its traffic through a real table.
const TEST_ONLY: &[(&str, &str)] = &[("port", "conntrack")];

fn is_test_file(f: &Path) -> bool {
    f.file_name().is_some_and(|n| n == "tests.rs")
        || f.strip_prefix(src_dir())
            .is_ok_and(|r| r.components().any(|c| c.as_os_str() == "tests"))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs`).
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir()).expect("file under src/");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// The source without comments and without the contents of string and char literals,
/// so that neither a doc link nor a message counts as an arrow.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                // A raw string (r"…", r#"…"#) has no escapes; the `r` and `#`s are
                // already copied, so count the hashes before the quote.
                let hashes = out.bytes().rev().take_while(|&c| c == b'#').count();
                let raw = out.len() > hashes && out.as_bytes()[out.len() - hashes - 1] == b'r';
                out.push('"');
                i += 1;
                while i < b.len() {
                    if !raw && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'"' && b[i + 1..].iter().take(hashes).all(|&c| c == b'#') {
                        break;
                    }
                    i += 1;
                }
                out.push('"');
                i += 1;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                // A char literal ('x' or '\n'); a lifetime ('a) has no closing quote.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push_str("' '");
                i += 1;
            }
            _ => {
                // Copy one whole UTF-8 character.
                let ch = src[i..].chars().next().expect("char boundary");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after each `crate::` (each item of a `crate::{…}` group).
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue; // `dataplane_crate::`, `$crate::`
        }
        let after = rest.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // The items of the group, at brace depth 0.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && is_ident(c) => {
                        let name: String =
                            group[j..].chars().take_while(|&c| is_ident(c)).collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// `from -> {to: a file that has the arrow}` (one outside the tests where there is one).
fn arrows() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let known: BTreeSet<&str> = LAYERS.iter().map(|l| l.0).collect();
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in files {
        let Some(from) = top_module(&f) else { continue };
        let src = std::fs::read_to_string(&f).unwrap();
        for to in crate_paths(&code_only(&src)) {
            // Items of the crate root (`crate::Nanos`) are no module; a lowercase name
            // that is not declared is, and the declaration test below catches it.
            if to == from || (!known.contains(to.as_str()) && !is_module(&to)) {
                continue;
            }
            // Keep a file outside the tests where there is one: that arrow is real.
            let at = graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| f.clone());
            if is_test_file(at) && !is_test_file(&f) {
                *at = f.clone();
            }
        }
    }
    graph
}

fn is_module(name: &str) -> bool {
    let src = src_dir();
    src.join(format!("{name}.rs")).exists() || src.join(name).join("mod.rs").exists()
}

fn layer(m: &str) -> &'static (&'static str, u8, &'static [&'static str]) {
    LAYERS
        .iter()
        .find(|l| l.0 == m)
        .unwrap_or_else(|| panic!("module `{m}` is not in LAYERS: declare its floor"))
}

#[test]
fn every_top_level_module_is_declared() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = code_only(&lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    assert!(declared.len() >= 7, "lib.rs declares {declared:?}");
    for m in &declared {
        layer(m);
    }
    for (name, ..) in LAYERS {
        assert!(
            declared.contains(*name),
            "LAYERS names `{name}`, lib.rs has no such module"
        );
    }
}

#[test]
fn declared_layers_point_down() {
    for (m, floor, uses) in LAYERS {
        for u in *uses {
            let (_, f, _) = layer(u);
            assert!(
                f < floor,
                "`{m}` (floor {floor}) may not use `{u}` (floor {f})"
            );
        }
    }
}

#[test]
fn test_only_arrows_point_down() {
    for (from, to) in TEST_ONLY {
        assert!(layer(to).1 < layer(from).1, "{from} -> {to}");
    }
}

#[test]
fn arrows_follow_the_layers() {
    let graph = arrows();
    assert!(
        graph
            .get("worker")
            .is_some_and(|t| t.contains_key("conntrack")),
        "the scan found no worker -> conntrack arrow: {graph:?}"
    );
    let mut bad = Vec::new();
    for (from, tos) in &graph {
        let (_, floor, uses) = layer(from);
        for (to, file) in tos {
            let test_only = TEST_ONLY.contains(&(from.as_str(), to.as_str()));
            let allowed = uses.contains(&to.as_str()) || (test_only && is_test_file(file));
            if !allowed {
                let (_, f, _) = layer(to);
                bad.push(format!(
                    "{from} (floor {floor}) -> {to} (floor {f}), in {}",
                    file.strip_prefix(src_dir()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "arrows the layers do not allow:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_circles() {
    let graph = arrows();
    // Depth-first search; a node met again while on the stack closes a circle.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|&s| s == n) {
            let mut c: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for to in g.get(n).into_iter().flat_map(|t| t.keys()) {
            if let Some(c) = visit(to, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_scanner_sees_groups_and_skips_comments() {
    let code = code_only(
        "use crate::{packet::Parsed, conntrack::{Track, CtState}};\n\
         // crate::worker in a comment\n\
         /// [`crate::port::Mbuf`]\n\
         let s = \"crate::ruleset\"; let r = r#\"crate::defrag\"#;\n\
         let x = crate::steer::owner(k); let c = '\\''; fn f<'a>() {}\n\
         m!($crate::arch::x);\n",
    );
    let got: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(got, ["conntrack", "packet", "steer"]);
}
