//! The DPDK `rte_hash` peer: builds `peers/rte_hash_bench.c` against libdpdk and times
//! bulk lookups of the same keys in the same order.

use statewall_bench::*;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn build_rte_hash_peer() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/rte_hash_bench.c");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libdpdk"])
        .output()
        .map_err(|e| format!("pkg-config not found ({e}); install pkg-config libdpdk-dev"))?;
    if !flags.status.success() {
        return Err(
            "libdpdk-dev not installed (pkg-config libdpdk failed): rte_hash peer skipped".into(),
        );
    }
    let out = std::env::temp_dir().join(format!("statewall-rte-hash-bench-{}", std::process::id()));
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let st = Command::new("cc")
        .args(["-O3", "-march=native", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags.split_whitespace())
        .output()
        .map_err(|e| format!("cc not found: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "building rte_hash_bench failed: {}",
            String::from_utf8_lossy(&st.stderr)
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(out)
}

/// 16-byte keys (src ip, dst ip, sport, dport, proto, 3 bytes of padding) of flows 0..n.
pub(crate) fn write_keys(n: u32) -> Result<PathBuf, String> {
    let mut v = Vec::with_capacity(n as usize * 16);
    for i in 0..n {
        let (c, s) = (client(i), server(i));
        let (IpAddr::V4(ca), IpAddr::V4(sa)) = (c.ip(), s.ip()) else {
            unreachable!()
        };
        v.extend_from_slice(&ca.octets());
        v.extend_from_slice(&sa.octets());
        v.extend_from_slice(&c.port().to_be_bytes());
        v.extend_from_slice(&s.port().to_be_bytes());
        v.extend_from_slice(&[6, 0, 0, 0]);
    }
    let p = std::env::temp_dir().join(format!("statewall-keys-{}-{n}.bin", std::process::id()));
    std::fs::write(&p, v).map_err(|e| e.to_string())?;
    Ok(p)
}

pub(crate) fn run_rte_hash(bin: &Path, keys: &Path, order: &[u32]) -> Result<f64, String> {
    let of = std::env::temp_dir().join(format!("statewall-order-{}.bin", std::process::id()));
    let bytes: Vec<u8> = order.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&of, bytes).map_err(|e| e.to_string())?;
    let out = Command::new(bin)
        .arg(keys)
        .arg(&of)
        .arg(BURST.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&of);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rte_hash "))
        .ok_or_else(|| {
            format!(
                "no result: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        })?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    let found: u64 = field("found=").and_then(|x| x.parse().ok()).unwrap_or(0);
    let lookups: u64 = field("lookups=").and_then(|x| x.parse().ok()).unwrap_or(1);
    if found != lookups {
        return Err(format!("rte_hash found {found} of {lookups}"));
    }
    field("ns_per_key=")
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| "unparsable".into())
}
