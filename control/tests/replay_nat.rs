//! `statewall replay --out` with NAT, through the binary and exactly the flags the
//! kernel oracle uses (`--rules F --inside CIDR --masquerade-addr IP --local-addr IP
//! --out OUT.pcap`): the translated frames come out byte for byte.

mod common;
use common::write_pcap;
use dataplane::packet::build::PacketSpec;
use dataplane::packet::tcp_flags::{ACK, SYN};
use std::net::SocketAddr;
use std::process::Command;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let n = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(b[at + 16..at + 16 + n].to_vec());
        at += 16 + n;
    }
    out
}

#[test]
fn replay_out_writes_masqueraded_and_redirected_frames() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("nat.rules.v4");
    std::fs::write(
        &rules,
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -i outside -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n\
-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n",
    )
    .unwrap();
    let input = [
        PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:443"), SYN, 1, 0).to_vec(),
        PacketSpec::tcp(
            sa("198.51.100.9:443"),
            sa("192.0.2.1:1234"),
            SYN | ACK,
            9,
            2,
        )
        .to_vec(),
        PacketSpec::tcp(sa("203.0.113.5:5000"), sa("198.51.100.80:80"), SYN, 1, 0).to_vec(),
    ];
    let want = [
        PacketSpec::tcp(sa("192.0.2.1:1234"), sa("198.51.100.9:443"), SYN, 1, 0).to_vec(),
        PacketSpec::tcp(sa("198.51.100.9:443"), sa("10.0.0.2:1234"), SYN | ACK, 9, 2).to_vec(),
        PacketSpec::tcp(sa("203.0.113.5:5000"), sa("192.0.2.254:3128"), SYN, 1, 0).to_vec(),
    ];
    let pcap = dir.path().join("in.pcap");
    let out = dir.path().join("out.pcap");
    write_pcap(&pcap, &input);
    let o = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .arg("--rules")
        .arg(&rules)
        .args([
            "--inside",
            "10.0.0.0/24",
            "--masquerade-addr",
            "192.0.2.1",
            "--local-addr",
            "192.0.2.254",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_pcap(&out);
    assert_eq!(got.len(), 3, "{}", String::from_utf8_lossy(&o.stdout));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // Two addresses of one family are refused, naming the flag.
    let o = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .args([
            "--masquerade-addr",
            "192.0.2.1",
            "--masquerade-addr",
            "192.0.2.2",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--masquerade-addr 192.0.2.2"));
}
