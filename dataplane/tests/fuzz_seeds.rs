//! Runs the fuzz targets' bodies (dataplane/fuzz/fuzz_targets/{parse,track}.rs) over the
//! committed seeds (dataplane/fuzz/seeds, written by make_seeds.py from the oracle
//! captures): every seed parses and tracks without a panic, and the SCTP and UDP-Lite
//! seeds reach their trackers (some of their frames are tracked to an entry).

use dataplane::conntrack::{Config, ConnTable, CtState, TrackOpts};
use dataplane::packet::{self, checksum, proto, Frame, L4};
use std::path::Path;

fn seeds(sub: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(sub);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn parse_seeds_parse_without_panic_and_cover_sctp_and_udplite() {
    let s = seeds("parse");
    let (mut sctp, mut lite) = (0, 0);
    for (_, data) in &s {
        if let Ok(Frame::Ip(p)) = packet::parse(data) {
            let _ = checksum::l4_ok(data, &p);
            if let L4::Udp(u) = p.l4 {
                let _ = checksum::udplite_ok(data, &p, u.len as usize);
            }
            let _ = &data[p.payload_range()];
            sctp += matches!(p.l4, L4::Sctp(_)) as usize;
            lite += (p.proto == proto::UDPLITE && matches!(p.l4, L4::Udp(_))) as usize;
        }
        let _ = packet::parse_embedded(data, 0);
    }
    assert!(
        sctp >= 20 && lite >= 10,
        "sctp {sctp}, udplite {lite} of {}",
        s.len()
    );
}

#[test]
fn track_seeds_track_without_panic() {
    let mut entries = 0;
    for (name, data) in seeds("track") {
        let mut t = ConnTable::new(64, Config::default());
        let mut rest = &data[..];
        let mut now = 0u64;
        while rest.len() > 3 {
            let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize % 256).min(rest.len() - 3);
            let step = rest[2] as u64;
            let frame = &rest[3..3 + n];
            rest = &rest[3 + n..];
            now += step * 100_000_000;
            if let Ok(Frame::Ip(p)) = packet::parse(frame) {
                let tr = t.track(frame, &p, now, TrackOpts::default());
                let _ = t.confirm(&tr, true, frame, &p, now);
                if name.starts_with(['s', 'l']) && tr.state == CtState::New {
                    entries += 1;
                }
            }
            assert!(t.len() <= t.capacity());
        }
    }
    assert!(
        entries >= 6,
        "SCTP/UDP-Lite seeds created {entries} entries"
    );
}
