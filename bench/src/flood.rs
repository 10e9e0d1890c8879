//! The `flood` subcommand: the UDP generator of the kernel peer.

use std::net::Ipv4Addr;
use std::time::Instant;

/// `flood DST SECONDS [FLOWS]`: sends 64-byte UDP frames (18-byte payload) to DST as fast
/// as sendmmsg allows, cycling FLOWS destination ports; prints packets sent.
pub(crate) fn flood_cmd(args: &[String]) {
    let dst: Ipv4Addr = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Ipv4Addr::new(10, 99, 2, 2));
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let flows: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    // SAFETY: plain socket syscalls on buffers that outlive them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0, "socket");
        const N: usize = 64;
        let payload = [0x5au8; 18];
        let mut addrs: Vec<libc::sockaddr_in> = Vec::with_capacity(N);
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(N);
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(N);
        for _ in 0..N {
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as u16;
            a.sin_addr.s_addr = u32::from(dst).to_be();
            addrs.push(a);
            iovs.push(libc::iovec {
                iov_base: payload.as_ptr() as *mut _,
                iov_len: payload.len(),
            });
        }
        for k in 0..N {
            let mut m: libc::mmsghdr = std::mem::zeroed();
            m.msg_hdr.msg_name = &mut addrs[k] as *mut _ as *mut _;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[k];
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        let start = Instant::now();
        let (mut sent, mut f) = (0u64, 0u16);
        while start.elapsed().as_secs_f64() < secs {
            for a in addrs.iter_mut() {
                a.sin_port = (10_000 + f).to_be();
                f = (f + 1) % flows.max(1);
            }
            let r = libc::sendmmsg(fd, msgs.as_mut_ptr(), N as u32, 0);
            if r > 0 {
                sent += r as u64;
            }
        }
        println!(
            "flood: sent {sent} in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
}
