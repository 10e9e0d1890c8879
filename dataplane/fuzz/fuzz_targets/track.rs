#![no_main]
//! Fuzzes the tracker: the input is split into frames (2-byte length prefix each) fed
//! to one small table with advancing time; no input may panic, and the table never
//! exceeds its capacity.
use dataplane::conntrack::{Config, ConnTable, TrackOpts};
use dataplane::packet::{self, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = ConnTable::new(64, Config::default());
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() > 3 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize % 256).min(rest.len() - 3);
        let step = rest[2] as u64;
        let frame = &rest[3..3 + n];
        rest = &rest[3 + n..];
        now += step * 100_000_000;
        if let Ok(Frame::Ip(p)) = packet::parse(frame) {
            let tr = t.track(frame, &p, now, TrackOpts::default());
            let _ = t.confirm(&tr, step % 7 != 0, frame, &p, now);
        }
        assert!(t.len() <= t.capacity());
    }
});
