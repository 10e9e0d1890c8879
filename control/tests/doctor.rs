//! `statewall doctor` and the deploy examples, through the binary.

mod common;
use common::*;
use std::process::Command;

fn doctor(args: &[&str], env: &[(&str, &std::path::Path)]) -> (i32, String) {
    let mut c = Command::new(bin());
    c.arg("doctor").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn pktgen_config(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("pktgen.toml");
    let text = std::fs::read_to_string(repo().join("deploy/examples/pktgen-demo.toml"))
        .unwrap()
        .replace("127.0.0.1:9469", &format!("127.0.0.1:{}", free_port()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn pktgen_only_is_ok_or_skip_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pktgen_config(dir.path());
    let (code, out) = doctor(&["--config", cfg.to_str().unwrap()], &[]);
    println!("{out}");
    assert_eq!(code, 0, "{out}");
    for l in out.lines() {
        assert!(l.starts_with("[ OK ] ") || l.starts_with("[SKIP] "), "{l}");
    }
    let (code, out) = doctor(&["--config", cfg.to_str().unwrap(), "--json"], &[]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for c in v.as_array().unwrap() {
        assert!(
            ["ok", "skip"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
        for k in ["check", "detail", "fix"] {
            assert!(c[k].is_string(), "{c}");
        }
    }
}

#[test]
fn invalid_configuration_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[[port]]\nname = \"a\"\nbackend = \"foo\"\n").unwrap();
    let (code, out) = doctor(&["--config", p.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("[FAIL] configuration:") && out.contains("port[0].backend"),
        "{out}"
    );
}

/// Writes a fixture file, creating its directories.
fn put(path: std::path::PathBuf, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

#[test]
fn af_packet_without_capabilities_or_interface_fails_with_the_fix() {
    // A fixture host: an unprivileged process without CAP_NET_RAW, eth1 present and up,
    // eth2 absent, cores 0-1 online and none isolated.
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let proc_ = dir.path().join("proc");
    put(sys.join("class/net/eth1/operstate"), "up\n");
    put(sys.join("class/net/eth1/mtu"), "1500\n");
    put(sys.join("devices/system/cpu/online"), "0-1\n");
    put(sys.join("devices/system/cpu/isolated"), "\n");
    put(
        proc_.join("self/status"),
        "Name:\tstatewall\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n",
    );
    put(
        proc_.join("meminfo"),
        "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n",
    );
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dataplane]\nworkers = 2\ncores = [0, 1]\n\
             [[port]]\nname = \"outside\"\nbackend = \"af_packet\"\ninterface = \"eth1\"\n\
             [[port]]\nname = \"inside\"\nbackend = \"af_packet\"\ninterface = \"eth2\"\n\
             [[pair]]\nnetwork = \"outside\"\nhost = \"inside\"\n\
             [control]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let (code, out) = doctor(
        &["--config", cfg.to_str().unwrap()],
        &[("STATEWALL_SYSFS", &sys), ("STATEWALL_PROCFS", &proc_)],
    );
    println!("{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] capability: CAP_NET_RAW missing (needed by port[0] \"outside\", backend af_packet)"), "{out}");
    assert!(out.contains("[ OK ] interface eth1: operstate up"), "{out}");
    assert!(
        out.contains("[FAIL] interface eth2: does not exist (port[1] \"inside\")"),
        "{out}"
    );
    assert!(out.contains("[WARN] isolcpus: worker cores 0,1 are not isolated (add isolcpus=0,1 nohz_full=0,1 rcu_nocbs=0,1"), "{out}");
    assert!(
        out.contains("[ OK ] cores: worker cores 0,1 online"),
        "{out}"
    );
    // Every WARN/FAIL line ends with its fix.
    for l in out
        .lines()
        .filter(|l| l.starts_with("[WARN]") || l.starts_with("[FAIL]"))
    {
        assert!(l.ends_with(')'), "{l}");
    }
    // With the capability (CapEff bit 13 and 12), that FAIL goes away.
    put(
        proc_.join("self/status"),
        "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000003000\n",
    );
    let (_, out) = doctor(
        &["--config", cfg.to_str().unwrap()],
        &[("STATEWALL_SYSFS", &sys), ("STATEWALL_PROCFS", &proc_)],
    );
    assert!(out.contains("[ OK ] capability: CapEff 0x3000"), "{out}");
}

#[test]
fn dpdk_config_without_hugepages_fails() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let proc_ = dir.path().join("proc");
    put(
        sys.join("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "0\n",
    );
    put(
        sys.join("kernel/mm/hugepages/hugepages-2048kB/free_hugepages"),
        "0\n",
    );
    std::fs::create_dir_all(proc_.join("self")).unwrap();
    put(proc_.join("mounts"), "proc /proc proc rw 0 0\n");
    let (code, out) = doctor(
        &[
            "--config",
            repo()
                .join("deploy/examples/dpdk-memif.toml")
                .to_str()
                .unwrap(),
        ],
        &[("STATEWALL_SYSFS", &sys), ("STATEWALL_PROCFS", &proc_)],
    );
    println!("{out}");
    assert_eq!(code, 1);
    assert!(out.contains("[FAIL] hugepages: none free"), "{out}");
    assert!(
        out.contains("[FAIL] hugetlbfs: no hugetlbfs mount (mount -t hugetlbfs"),
        "{out}"
    );
}

#[test]
fn deploy_examples_pass_check_examples_sh() {
    let o = Command::new("bash")
        .arg(repo().join("deploy/tests/check-examples.sh"))
        .arg(bin())
        .env("STRICT", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    println!("{out}");
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("ok: statewall config check pktgen-demo.toml"),
        "{out}"
    );
    assert!(!out.contains("SKIP"), "{out}");
}
