//! AF_PACKET ports: any Linux interface (veth in tests), one socket per queue.
//!
//! * Receive: a TPACKET_V3 ring mmapped per socket. The kernel fills *blocks* of frames;
//!   `rx_burst` walks the block descriptors in shared memory (no system call per packet,
//!   none at all while frames are waiting) and hands a block back by writing its status
//!   word. A block is retired by the kernel when full or after `retire_tov_ms`, so at low
//!   rates frames appear with up to that much delay. Frames are copied into pool buffers
//!   so blocks go back to the kernel at once (zero-copy would pin a block until its last
//!   frame was transmitted).
//! * Transmit: `sendmmsg` with `MSG_DONTWAIT`, one system call per burst (up to
//!   [`TX_BATCH`] frames), and `PACKET_QDISC_BYPASS`. Chosen over a TX ring because a TX
//!   ring still needs a `send` per burst to kick the kernel, and sendmmsg keeps buffers in
//!   our pool (no second copy into a ring slot to manage) with simpler error handling.
//!   A full device queue (`EAGAIN`/`ENOBUFS`) leaves the frames in the caller's vector.
//! * Queues: every socket joins one `PACKET_FANOUT_CBPF` group steered by our classic
//!   BPF program ([`crate::steer::fanout`]): a symmetric hash of addresses and ports, so both
//!   directions of a connection land on the same socket, and for an ICMP/ICMPv6 error the
//!   hash of the packet it quotes, so the error reaches the worker that owns its flow
//!   (the kernel's own `PACKET_FANOUT_HASH` is symmetric too but hashes errors by their
//!   outer header). `port_af_packet_fanout_is_symmetric` checks, on the running kernel,
//!   that every frame lands on queue `steer_hash(frame) % queues`. (Fragments hash by
//!   addresses only, so a fragment can reach another queue than its flow's unfragmented
//!   packets: the worker that reassembles the datagram hands the fragments to the
//!   flow's owner, see `worker::Ownership`.)
//! * `PACKET_IGNORE_OUTGOING` so a socket does not see frames sent on its interface
//!   (plus a check of `sll_pkttype` for kernels without it), and promiscuous membership.
//! * `Mbuf::hash` is the kernel's rx hash (`TP_FT_REQ_FILL_RXHASH`), not
//!   [`crate::steer::symmetric_hash`]: the queue a frame arrived on is what steering means here.
//!
//! Every `unsafe` block of the port layer's system interface is in this file (or in the
//! helpers it shares with af_xdp, [`super::sys`]), each with the invariant it relies on.

// `unsafe` is denied crate-wide (lib.rs); this backend needs it for the mmapped TPACKET_V3 ring and its system calls.
#![allow(unsafe_code)]

use super::sys::{self, setsockopt};
use super::{Mbuf, MbufPool, Port};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Most frames sent with one `sendmmsg`.
pub const TX_BATCH: usize = 64;

const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// `tp_status` bit: the kernel or the NIC verified the L4 checksum.
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;
const TP_FT_REQ_FILL_RXHASH: u32 = 1;
const PACKET_OUTGOING: u8 = 4;
/// Fanout by a classic BPF program (ours: [`crate::steer::fanout`]).
const PACKET_FANOUT_CBPF: u32 = 6;
/// Sets the fanout group's program.
const PACKET_FANOUT_DATA: libc::c_int = 22;
/// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`).
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST_PKT: usize = 16;
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where `sockaddr_ll` follows the header.
const TP3_HDR_ALIGNED: usize = 48;

/// Ring geometry and socket options of one queue's socket.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Bytes per block (a multiple of the page size, power of two).
    pub block_size: u32,
    /// Blocks per ring.
    pub block_count: u32,
    /// Frame size hint (TPACKET_V3 packs frames tightly; this only sizes `frame_nr`).
    pub frame_size: u32,
    /// Block retire timeout in milliseconds (latency bound at low rates).
    pub retire_tov_ms: u32,
    /// Put the interface in promiscuous mode while the port is open.
    pub promiscuous: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 18,
            block_count: 64,
            frame_size: 2048,
            retire_tov_ms: 1,
            promiscuous: true,
        }
    }
}

/// One queue: a socket with its mmapped receive ring and its transmit scratch arrays.
struct Queue {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    /// Block being read.
    block: usize,
    /// Frames left in the current block, when `in_block`.
    left: u32,
    /// Offset of the next frame in the current block.
    off: usize,
    in_block: bool,
    idle_polls: u32,
    /// The interface was found down or gone (counted once in `down_events`); cleared
    /// when a frame moves again.
    down: bool,
    iov: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
}

// SAFETY: the ring mapping and the iovec/mmsghdr scratch arrays are owned exclusively by
// this Queue (nothing else holds their pointers between calls), so moving the Queue to
// another thread moves sole ownership; the kernel side of the ring is thread-agnostic.
unsafe impl Send for Queue {}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `ring`/`ring_len` are exactly the mapping created in `Queue::open` and it
        // is unmapped only here, once; no reference into it outlives `&mut self`.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
        }
        // The socket closes when `fd` drops (which also drops the promiscuous membership
        // and leaves the fanout group).
    }
}

fn last_err(what: &str, ifname: &str) -> io::Error {
    sys::last_err("af_packet", what, ifname)
}

impl Queue {
    fn open(ifname: &str, ifindex: i32, cfg: &RingConfig, fanout_id: u16) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0, // no traffic until bind, after the ring exists
            )
        };
        if raw < 0 {
            return Err(last_err("socket (needs CAP_NET_RAW)", ifname));
        }
        // SAFETY: `raw` was just returned by a successful socket(2) and is handed to
        // nothing else.
        let fd = unsafe { sys::owned(raw) };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)
            .map_err(|_| last_err("PACKET_VERSION TPACKET_V3", ifname))?;
        let frames_per_block = (cfg.block_size / cfg.frame_size.max(64)).max(1);
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: cfg.frame_size,
            tp_frame_nr: frames_per_block * cfg.block_count,
            tp_retire_blk_tov: cfg.retire_tov_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: TP_FT_REQ_FILL_RXHASH,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|_| last_err("PACKET_RX_RING (check block_size/frame_size)", ifname))?;
        let ring_len = cfg.block_size as usize * cfg.block_count as usize;
        // The ring the kernel just allocated for this socket, with the size it was
        // configured with.
        let ring = sys::mmap_ring(&fd, ring_len, 0)
            .map_err(|e| sys::err("af_packet", "mmap rx ring", ifname, e))?;
        let mut q = Queue {
            fd,
            ring,
            ring_len,
            block_size: cfg.block_size as usize,
            block_count: cfg.block_count as usize,
            block: 0,
            left: 0,
            off: 0,
            in_block: false,
            idle_polls: 0,
            down: false,
            // SAFETY (zeroed): iovec and mmsghdr are plain C structs for which all-zero
            // bytes are a valid value (null pointers, zero lengths).
            iov: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0
                };
                TX_BATCH
            ]
            .into_boxed_slice(),
            msgs: (0..TX_BATCH)
                // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
                .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
                .collect(),
        };
        // From here on the Queue owns the mapping (Drop unmaps it on any error below).
        // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid before we fill it.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a live sockaddr_ll and we pass its size.
        let r = unsafe {
            libc::bind(
                q.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err("bind", ifname));
        }
        // Older kernels (< 4.20) lack it; rx then also skips PACKET_OUTGOING frames.
        let _ = setsockopt(&q.fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        let _ = setsockopt(&q.fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32);
        if cfg.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            setsockopt(&q.fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|_| last_err("promiscuous membership", ifname))?;
        }
        let fanout = i32::from(fanout_id) | ((PACKET_FANOUT_CBPF as i32) << 16);
        setsockopt(&q.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &fanout)
            .map_err(|_| last_err("PACKET_FANOUT_CBPF", ifname))?;
        // The group's steering program (any member may set it; every one does).
        let prog = crate::steer::fanout::steering_program();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&q.fd, libc::SOL_PACKET, PACKET_FANOUT_DATA, &fprog)
            .map_err(|_| last_err("PACKET_FANOUT_DATA (steering program)", ifname))?;
        q.block = 0;
        Ok(q)
    }

    /// The status word of block `b`, in shared memory.
    fn status(&self, b: usize) -> &AtomicU32 {
        // SAFETY: `b < block_count`, so the block descriptor lies inside the mapping, which
        // lives as long as `self`; the status word is 4-byte aligned (blocks are page
        // aligned, offset 8) and the kernel and we access it only as a 32-bit word.
        unsafe { AtomicU32::from_ptr(self.ring.add(b * self.block_size + BLK_STATUS).cast()) }
    }

    fn block_u32(&self, b: usize, off: usize) -> u32 {
        // SAFETY: `off` is a field offset inside the block descriptor of block `b < count`
        // (inside the mapping); the block is owned by user space (status USER, read with
        // Acquire), so the kernel is not writing it.
        unsafe { ptr::read(self.ring.add(b * self.block_size + off).cast::<u32>()) }
    }

    /// Hands the current block back to the kernel and moves to the next.
    fn release_block(&mut self) {
        self.status(self.block)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.block_count;
        self.in_block = false;
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`): the kernel sets
    /// `ENETDOWN` when the interface goes down or is unregistered (a veth deleted).
    fn pending_error(&self) -> i32 {
        // SAFETY: a c_int is a plain integer.
        let r =
            unsafe { sys::getsockopt::<libc::c_int>(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR) };
        r.map_or(0, |(e, _)| e)
    }

    /// Marks the interface down, counting the transition once.
    fn mark_down(&mut self, c: &super::QueueCounters) {
        if !self.down {
            self.down = true;
            c.add_down_event();
        }
    }

    /// Reads and resets the kernel's drop counter (PACKET_STATISTICS).
    fn kernel_drops(&self) -> u64 {
        // SAFETY: tpacket_stats_v3 is plain integers.
        let r = unsafe {
            sys::getsockopt::<libc::tpacket_stats_v3>(
                &self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
            )
        };
        r.map_or(0, |(st, _)| u64::from(st.tp_drops))
    }
}

/// An AF_PACKET port: one socket and ring per queue, all in one fanout group.
pub struct AfPacketPort {
    h: super::QueueHandle<Queue>,
}

impl AfPacketPort {
    /// Opens `queues` sockets on `ifname` (1 or more), each with an rx ring of `cfg`.
    /// Needs CAP_NET_RAW.
    pub fn open(ifname: &str, queues: u16, cfg: &RingConfig) -> io::Result<Self> {
        if queues == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "af_packet: queues must be at least 1",
            ));
        }
        let c = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "af_packet: bad ifname"))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(last_err("no such interface", ifname));
        }
        // A group id unique to this process and interface.
        let fanout_id = ((std::process::id() ^ ifindex.wrapping_mul(0x9e37)) & 0xffff) as u16;
        let qs = (0..queues)
            .map(|_| Queue::open(ifname, ifindex as i32, cfg, fanout_id))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(AfPacketPort {
            h: super::QueueHandle::new(format!("af_packet:{ifname}"), qs),
        })
    }

    /// Sets the port id written into received buffers.
    pub fn set_port_id(&mut self, id: u16) {
        self.h.port_id = id;
    }

    /// One handle per queue, for one worker per queue (counters stay shared).
    pub fn split_queues(self) -> Vec<AfPacketPort> {
        self.h
            .split()
            .into_iter()
            .map(|h| AfPacketPort { h })
            .collect()
    }

    /// Folds the kernel's drop counters into `rx_missed` now (also done per released
    /// block and every few thousand idle polls).
    pub fn refresh_stats(&mut self) {
        for (i, q) in self.h.queues.iter().enumerate() {
            self.h
                .counters
                .queue(self.h.first + i as u16)
                .add_rx_missed(q.kernel_drops());
        }
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.h.name
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        let port_id = self.h.port_id;
        let Some((q, c)) = self.h.queue_mut(queue) else {
            return 0;
        };
        let (mut n, mut bytes, mut errors, mut released) = (0usize, 0u64, 0u64, false);
        while n < max {
            if !q.in_block {
                if q.status(q.block).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                    break;
                }
                q.left = q.block_u32(q.block, BLK_NUM_PKTS);
                q.off = q.block_u32(q.block, BLK_FIRST_PKT) as usize;
                q.in_block = true;
                if q.left == 0 {
                    q.release_block();
                    released = true;
                    continue;
                }
            }
            let Some(mut m) = pool.get() else {
                // The frame stays in the ring and is read on a later burst.
                c.add_rx_nombuf(1);
                break;
            };
            let base = q.block * q.block_size;
            // Bounds: the kernel lays out every frame of a user-owned block inside it.
            if q.off + TP3_HDR_ALIGNED + 12 > q.block_size {
                pool.put(m);
                errors += 1;
                q.release_block();
                released = true;
                continue;
            }
            // SAFETY: the block is user-owned (status USER observed with Acquire), the
            // header offset was checked to lie inside the block, which lies inside the
            // mapping; tpacket3_hdr is plain data that the kernel no longer writes.
            let h: libc::tpacket3_hdr =
                unsafe { ptr::read_unaligned(q.ring.add(base + q.off).cast()) };
            // SAFETY: as above; sll_pkttype is byte 10 of the sockaddr_ll that follows the
            // aligned header, inside the checked range.
            let pkttype = unsafe { *q.ring.add(base + q.off + TP3_HDR_ALIGNED + 10) };
            let start = q.off + usize::from(h.tp_mac);
            let snap = h.tp_snaplen as usize;
            if pkttype != PACKET_OUTGOING && start + snap <= q.block_size {
                let take = snap.min(m.capacity());
                // SAFETY: `start + snap <= block_size` was checked, so the source range is
                // inside the user-owned block; `m` has at least `take` bytes; the ranges
                // cannot overlap (the mbuf is heap memory, not the mapping).
                unsafe {
                    ptr::copy_nonoverlapping(
                        q.ring.add(base + start),
                        m.data_mut_full().as_mut_ptr(),
                        take,
                    );
                }
                m.set_len(take);
                m.port = port_id;
                m.queue = queue;
                m.timestamp = u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec);
                m.hash = h.hv1.tp_rxhash;
                m.l4_csum_ok = h.tp_status & TP_STATUS_CSUM_VALID != 0;
                // Truncated by the snap length or the buffer size. (TP_STATUS_LOSING only
                // says drops happened; they are counted from PACKET_STATISTICS.)
                errors += u64::from(take < h.tp_len as usize);
                bytes += take as u64;
                out.push(m);
                n += 1;
            } else {
                if pkttype != PACKET_OUTGOING {
                    errors += 1;
                }
                pool.put(m);
            }
            q.left -= 1;
            if q.left == 0 || h.tp_next_offset == 0 {
                q.release_block();
                released = true;
            } else {
                q.off += h.tp_next_offset as usize;
            }
        }
        if n == 0 {
            q.idle_polls = q.idle_polls.wrapping_add(1);
        } else {
            q.down = false;
        }
        if released || q.idle_polls % 4096 == 4095 {
            c.add_rx_missed(q.kernel_drops());
        }
        // A vanished interface only shows as silence on the ring: look at the socket's
        // pending error now and then (one getsockopt per 4096 empty polls).
        if n == 0 && q.idle_polls % 4096 == 2047 && q.pending_error() == libc::ENETDOWN {
            q.mark_down(c);
        }
        c.add_rx(n as u64, bytes);
        c.add_rx_errors(errors);
        n
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        let Some((q, c)) = self.h.queue_mut(queue) else {
            return 0;
        };
        let mut done = 0;
        while !pkts.is_empty() {
            let k = pkts.len().min(TX_BATCH);
            for (i, m) in pkts[..k].iter().enumerate() {
                q.iov[i] = libc::iovec {
                    iov_base: m.data().as_ptr() as *mut libc::c_void,
                    iov_len: m.len(),
                };
                let h = &mut q.msgs[i].msg_hdr;
                h.msg_name = ptr::null_mut();
                h.msg_namelen = 0;
                h.msg_iov = &mut q.iov[i];
                h.msg_iovlen = 1;
                h.msg_control = ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                q.msgs[i].msg_len = 0;
            }
            // SAFETY: `msgs[..k]` are initialised headers whose iovecs point into the frames
            // of `pkts[..k]`, which stay alive and unmoved for the call; the kernel only
            // reads the frames and writes `msg_len`.
            let r = unsafe {
                libc::sendmmsg(
                    q.fd.as_raw_fd(),
                    q.msgs.as_mut_ptr(),
                    k as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if e == libc::EAGAIN || e == libc::ENOBUFS || e == libc::EINTR {
                    break; // back-pressure: the rest stays with the caller
                }
                if e == libc::ENXIO || e == libc::ENETDOWN || e == libc::ENODEV {
                    // The interface is down or gone (deleted under us): every frame of
                    // the burst would fail the same way. Drop them all with this one
                    // system call, count them, and count the transition once.
                    q.mark_down(c);
                    c.add_tx_errors(pkts.len() as u64);
                    done += pkts.len();
                    pool.put_all(pkts);
                    break;
                }
                // A frame the kernel refuses (too big, interface down): drop it, count it,
                // and go on with the rest.
                c.add_tx_errors(1);
                pool.put(pkts.remove(0));
                done += 1;
                continue;
            }
            let sent = r as usize;
            q.down &= sent == 0;
            let bytes: u64 = pkts[..sent].iter().map(|m| m.len() as u64).sum();
            c.add_tx(sent as u64, bytes);
            for m in pkts.drain(..sent) {
                pool.put(m);
            }
            done += sent;
            if sent < k {
                break;
            }
        }
        done
    }

    // stats, queues, queue_range, counters: what the handle knows.
    super::queue_handle_methods!(h);

    fn steering(&self) -> Option<super::Steering> {
        Some(super::Steering::Fanout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::port::testnet::{self, Netns};
    use std::time::{Duration, Instant};

    fn open(ns: &Netns, which: &str, ifname: &str, queues: u16) -> AfPacketPort {
        let ifname = ifname.to_string();
        ns.run_in(which, move || {
            AfPacketPort::open(&ifname, queues, &RingConfig::default()).expect("open port")
        })
    }

    fn udp_frame(i: u16, rev: bool) -> Vec<u8> {
        let a = format!("10.1.{}.{}:{}", i >> 8, i & 0xff, 1000 + i);
        let b = format!("10.2.0.1:{}", 2000 + i % 7);
        let (s, d) = if rev { (b, a) } else { (a, b) };
        PacketSpec::udp(s.parse().unwrap(), d.parse().unwrap())
            .payload(b"statewall-af-packet-test")
            .to_vec()
    }

    const MARKER: &[u8] = b"statewall-af-packet-test";

    fn receive(
        port: &mut AfPacketPort,
        pool: &mut MbufPool,
        want: usize,
        ms: u64,
    ) -> Vec<(u16, Vec<u8>)> {
        testnet::receive(port, pool, want, ms, MARKER)
    }

    #[test]
    fn port_af_packet_veth_send_and_receive() {
        let Some(ns) = Netns::new("port_af_packet_veth_send_and_receive") else {
            return;
        };
        let mut a = open(&ns, &ns.a, &ns.veth_a(), 1);
        let mut b = open(&ns, &ns.b, &ns.veth_b(), 1);
        let mut pool = MbufPool::new(256);
        let frames: Vec<Vec<u8>> = (0..100).map(|i| udp_frame(i, false)).collect();
        let sent = testnet::send_all(&mut a, &mut pool, &frames);
        assert_eq!(sent, 100);
        assert_eq!(pool.outstanding(), 0);
        let got = receive(&mut b, &mut pool, 100, 3000);
        assert_eq!(got.len(), 100);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(_, f)| f).collect();
        assert_eq!(got, frames, "bytes and order preserved");
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!(sa.tx_packets, 100);
        assert_eq!(
            sa.tx_bytes,
            frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        assert!(sb.rx_packets >= 100, "{sb:?}");
        assert_eq!((sb.rx_errors, sb.rx_nombuf, sa.tx_errors), (0, 0, 0));
        // The sender does not see its own frames (PACKET_IGNORE_OUTGOING).
        assert!(receive(&mut a, &mut pool, 1, 200).is_empty());
        assert_eq!(pool.outstanding(), 0);
        assert!(a.counters().total().tx_packets == 100);
    }

    #[test]
    fn port_af_packet_fanout_is_symmetric() {
        let Some(ns) = Netns::new("port_af_packet_fanout_is_symmetric") else {
            return;
        };
        let mut a = open(&ns, &ns.a, &ns.veth_a(), 1);
        let b = open(&ns, &ns.b, &ns.veth_b(), 4);
        let mut pool = MbufPool::new(512);
        // 64 flows, each in both directions (as a bump in the wire would see them).
        let mut frames = Vec::new();
        for i in 0..64 {
            let q = udp_frame(i, false);
            frames.push(q.clone());
            frames.push(udp_frame(i, true));
            // A port-unreachable from a router about the flow, quoting the query.
            frames.push(
                PacketSpec::icmp(
                    "10.9.9.9".parse().unwrap(),
                    "10.1.0.1".parse().unwrap(),
                    3,
                    3,
                    [0; 4],
                )
                .payload(&q[14..])
                .to_vec(),
            );
        }
        let mut pkts = Vec::with_capacity(frames.len());
        for f in &frames {
            let mut m = pool.get().unwrap();
            m.copy_from(f);
            pkts.push(m);
        }
        let t0 = Instant::now();
        while !pkts.is_empty() && t0.elapsed() < Duration::from_secs(2) {
            a.tx_burst(0, &mut pkts, &mut pool);
        }
        // One handle per queue, as workers would hold them.
        let mut handles = b.split_queues();
        assert_eq!(handles.len(), 4);
        assert_eq!(handles[3].queue_range(), 3..4);
        let mut got = Vec::new();
        let t0 = Instant::now();
        while got.len() < frames.len() && t0.elapsed() < Duration::from_secs(3) {
            for h in &mut handles {
                got.extend(receive(h, &mut pool, 1, 20));
            }
        }
        assert_eq!(got.len(), frames.len());
        let mut queue_of_flow = std::collections::HashMap::new();
        let mut used = std::collections::HashSet::new();
        for (q, f) in &got {
            // The kernel ran our program: the queue is the Rust model's.
            let want = (crate::steer::fanout::steer_hash(f) % 4) as u16;
            assert_eq!(*q, want, "frame steered as steer_hash says");
            used.insert(*q);
            let flow = match crate::packet::parse(f) {
                Ok(crate::packet::Frame::Ip(p)) if matches!(p.l4, crate::packet::L4::Icmp(_)) => {
                    crate::steer::frame_hash(
                        &f[..14]
                            .iter()
                            .chain(&f[p.l4_off as usize + 8..])
                            .copied()
                            .collect::<Vec<u8>>(),
                    )
                }
                _ => crate::steer::frame_hash(f),
            };
            let prev = queue_of_flow.insert(flow, *q);
            assert!(
                prev.is_none_or(|p| p == *q),
                "both directions and the ICMP error on one queue"
            );
        }
        assert_eq!(queue_of_flow.len(), 64);
        assert!(used.len() > 1, "fanout spreads flows: {used:?}");
        let total: u64 = handles.iter().map(|h| h.stats().rx_packets).sum();
        assert!(total >= 192);
        assert_eq!(handles[0].counters().total().rx_packets, total);
        assert_eq!(pool.outstanding(), 0);
    }
}
