#![no_main]
//! Fuzzes the frame parser and the checksum functions: no input may panic.
use dataplane::packet::{self, checksum, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Frame::Ip(p)) = packet::parse(data) {
        let _ = checksum::l4_ok(data, &p);
        if let packet::L4::Udp(u) = p.l4 {
            // UDP-Lite's coverage may exceed the datagram: a false, never a panic.
            let _ = checksum::udplite_ok(data, &p, u.len as usize);
        }
        let _ = checksum::ipv4_header_ok(data, &p);
        let _ = &data[p.payload_range()];
    }
    let _ = packet::parse_embedded(data, 0);
});
