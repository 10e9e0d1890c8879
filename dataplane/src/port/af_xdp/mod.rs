//! AF_XDP ports: XDP sockets on any Linux interface (veth in tests), one socket per queue.
//!
//! Raw system calls only (`socket`, `setsockopt`, `mmap`, `bind`, `bpf`): no libbpf or
//! libxdp, so a default build needs no system library. Constants and struct layouts are
//! those of the kernel UAPI headers `linux/if_xdp.h`, `linux/bpf.h` and `linux/if_link.h`
//! (checked against them; the `libc` crate provides the `if_xdp.h` structs).
//!
//! * UMEM: every queue has its own socket and its own UMEM, an anonymous mapping of
//!   `2 x descriptors` frames of [`XdpConfig::frame_size`] bytes (2048 by default, the
//!   [`super::DEFAULT_MBUF_SIZE`]; aligned chunk mode). The first half of the frames
//!   circulates FILL -> kernel -> RX -> FILL, the second half is the transmit stock:
//!   free list -> TX -> kernel -> COMPLETION -> free list. FILL and RX have as many
//!   entries as there are receive frames, so a frame read from RX always fits back into
//!   FILL.
//! * Receive: `rx_burst` peeks the RX ring in shared memory, copies each frame into a
//!   pool [`Mbuf`], and then releases the whole batch of RX descriptors and refills FILL
//!   with the same frames (one consumer and one producer store per burst). Copying is a
//!   choice forced by the buffer model: an `Mbuf` owns a boxed buffer from the worker's
//!   pool, so a UMEM frame cannot be lent to the worker; the copy is also what lets the
//!   frame go back to FILL at once. Frames stay in the RX ring when the pool is empty
//!   (`rx_nombuf` counts the event, as af_packet does).
//! * Transmit: `tx_burst` reclaims completions, copies each `Mbuf` into a free transmit
//!   frame, writes the TX descriptors and submits the batch with one producer store.
//!   Back-pressure (TX ring full, no free frame) leaves the rest in the caller's vector.
//! * `need_wakeup` (`XDP_USE_NEED_WAKEUP`): `sendto` kicks transmission only when the TX
//!   ring asks for it (in copy mode the kernel always asks, since it transmits only from
//!   the `sendto` context, at most 32 frames per call: the kick is repeated while it
//!   answers `EAGAIN`, bounded, and resumed on the next burst); `recvfrom` wakes the
//!   driver only when the RX ring is empty and the FILL ring asks for it. Never per
//!   packet.
//! * Bind: `XDP_ZEROCOPY` first when [`XdpConfig::zero_copy`] is set (drivers with AF_XDP
//!   zero-copy support: ice, i40e, mlx5, ...), falling back to `XDP_COPY` (veth, everything
//!   else). Zero-copy only saves the kernel's copy: this backend copies once into the pool
//!   either way (see above).
//! * Steering program: a `BPF_MAP_TYPE_XSKMAP` holds the socket of each queue at the
//!   queue's index; the XDP program, hand-assembled (see [`redirect_program`]), is
//!   `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`, so frames of a
//!   queue without a socket (or of queues beyond those opened) go to the kernel stack.
//!   It is attached with a BPF link (`BPF_LINK_CREATE`), native (driver) mode first and
//!   generic (skb) mode as the fallback ([`XdpMode`]); the link, program and map are
//!   shared by every queue handle and the program detaches when the last handle drops
//!   (closing the link's descriptor detaches it; a crashed process detaches it too).
//! * Counters: `rx_missed` is the socket's `XDP_STATISTICS` `rx_dropped + rx_ring_full`
//!   (frames the kernel could not deliver: no FILL frame, RX ring full, frame larger than
//!   a UMEM frame). `rx_fill_ring_empty_descs` is not added: in copy mode the same loss
//!   is already in `rx_dropped`, and in zero-copy mode it counts driver refill attempts,
//!   not frames. `rx_errors` adds `rx_invalid_descs`, `tx_errors` adds
//!   `tx_invalid_descs`. The statistics are read every [`STATS_EVERY`] empty polls and by
//!   [`AfXdpPort::refresh_stats`].
//! * Multi-queue: a socket receives only the frames of the queue it is bound to (the
//!   kernel refuses a redirect to a socket of another queue), so the XDP program cannot
//!   re-steer across queues: which queue, and so which worker, sees a flow is the NIC's
//!   RSS, which statewall cannot evaluate ([`Port::steering`] is `None`). The workers
//!   therefore check the owner of every packet from these queues and hand the strays to
//!   the worker owning their connection (`worker::Ownership`), so both directions of a
//!   connection meet one shard whatever the RSS does. veth has one queue unless made
//!   with `numrxqueues N numtxqueues N`, and picks its receive queue from the sender's
//!   transmit queue (XPS/flow hash), which is not symmetric: the two-queue test in
//!   `control/tests/af_xdp.rs` runs exactly that. On real NICs a symmetric RSS
//!   (`ethtool -X IF hfunc toeplitz` with a symmetric key, or `symmetric-xor`) keeps
//!   the hand-off traffic small.
//! * `Mbuf::hash` is 0 and `Mbuf::timestamp` is the burst's `CLOCK_MONOTONIC` read (XDP
//!   sockets carry no timestamp in copy mode).
//!
//! Every `unsafe` block of this backend is in this folder (`bpf.rs`: the bpf(2) call;
//! `ring.rs`: the shared rings; `umem.rs`: the socket, its UMEM and its queue; this file:
//! the bursts) or in the helpers it shares with af_packet ([`super::sys`]), each with the
//! invariant it relies on.

// `unsafe` is denied crate-wide (lib.rs); this backend needs it for UMEM and ring mappings, bpf(2) and the socket calls (for the whole folder).
#![allow(unsafe_code)]

mod bpf;
mod ring;
mod umem;

pub use bpf::redirect_program;

use super::sys;
use super::{Mbuf, MbufPool, Port};
use bpf::XdpProgram;
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::Arc;
use umem::Queue;

/// Empty receive polls between two reads of the kernel's `XDP_STATISTICS`.
pub const STATS_EVERY: u32 = 1024; // a power of two
/// Most `sendto` kicks in one `tx_burst` (copy mode sends 32 frames per kick).
const MAX_KICKS: usize = 8;

/// How the XDP program is attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic mode when the driver refuses.
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (skb) mode only (`XDP_FLAGS_SKB_MODE`): works on every interface, after
    /// the kernel has built an skb.
    Generic,
}

/// Ring and UMEM geometry of one queue's socket.
#[derive(Debug, Clone)]
pub struct XdpConfig {
    /// Entries of each ring (RX, TX, FILL, COMPLETION): a power of two. The UMEM has twice
    /// as many frames (one set for receive, one for transmit).
    pub descriptors: u32,
    /// Bytes per UMEM frame: 2048 or 4096 (a power of two, at most the page size). In copy
    /// mode the kernel keeps 256 bytes of headroom, so a 2048-byte frame receives up to
    /// 1792-byte frames.
    pub frame_size: u32,
    /// Attach mode of the steering program.
    pub mode: XdpMode,
    /// Try `XDP_ZEROCOPY` before `XDP_COPY`.
    pub zero_copy: bool,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            descriptors: 2048,
            frame_size: 2048,
            mode: XdpMode::Auto,
            zero_copy: true,
        }
    }
}

impl XdpConfig {
    /// The default configuration with `n` descriptors per ring.
    pub fn with_descriptors(n: u32) -> Self {
        XdpConfig {
            descriptors: n,
            ..Default::default()
        }
    }
}

fn err(what: &str, ifname: &str, e: io::Error) -> io::Error {
    sys::err("af_xdp", what, ifname, e)
}

fn last_err(what: &str, ifname: &str) -> io::Error {
    sys::last_err("af_xdp", what, ifname)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn monotonic_ns() -> u64 {
    // SAFETY: all-zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a live timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An AF_XDP port: one XDP socket and UMEM per queue, steered by one XDP program.
pub struct AfXdpPort {
    h: super::QueueHandle<Queue>,
}

impl AfXdpPort {
    /// Opens sockets on queues `0..queues` of `ifname` and attaches the steering program.
    /// Needs CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN); the UMEM counts
    /// against RLIMIT_MEMLOCK without CAP_IPC_LOCK.
    pub fn open(ifname: &str, queues: u16, cfg: &XdpConfig) -> io::Result<Self> {
        if queues == 0 {
            return Err(invalid("af_xdp: queues must be at least 1".into()));
        }
        if !cfg.descriptors.is_power_of_two() || cfg.descriptors < 64 {
            return Err(invalid(format!(
                "af_xdp {ifname}: descriptors must be a power of two >= 64, got {}",
                cfg.descriptors
            )));
        }
        if !cfg.frame_size.is_power_of_two() || !(2048..=4096).contains(&cfg.frame_size) {
            return Err(invalid(format!(
                "af_xdp {ifname}: frame_size must be 2048 or 4096, got {}",
                cfg.frame_size
            )));
        }
        let c = CString::new(ifname).map_err(|_| invalid("af_xdp: bad ifname".into()))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(last_err("no such interface", ifname));
        }
        let mut prog = XdpProgram::load(ifname, u32::from(queues))?;
        // Native mode decides whether zero-copy is worth trying at all.
        prog.attach(ifname, ifindex, cfg.mode)?;
        let prog = Arc::new(prog);
        let mut qs = Vec::with_capacity(usize::from(queues));
        for qi in 0..u32::from(queues) {
            let try_zc = cfg.zero_copy && prog.native;
            let q = match Queue::open(ifname, ifindex, qi, cfg, try_zc, &prog) {
                Ok(q) => q,
                Err(_) if try_zc => Queue::open(ifname, ifindex, qi, cfg, false, &prog)?,
                Err(e) => return Err(e),
            };
            prog.insert(ifname, qi, q.fd.as_raw_fd())?;
            qs.push(q);
        }
        Ok(AfXdpPort {
            h: super::QueueHandle::new(format!("af_xdp:{ifname}"), qs),
        })
    }

    /// Sets the port id written into received buffers.
    pub fn set_port_id(&mut self, id: u16) {
        self.h.port_id = id;
    }

    /// Whether the steering program runs in native (driver) mode, not generic mode.
    pub fn native(&self) -> bool {
        self.h.queues.first().is_some_and(|q| q._prog.native)
    }

    /// Whether the sockets of this handle are bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.h.queues.iter().all(|q| q.zero_copy)
    }

    /// One handle per queue, for one worker per queue (counters and the XDP program stay
    /// shared; the program detaches when the last handle drops).
    pub fn split_queues(self) -> Vec<AfXdpPort> {
        self.h
            .split()
            .into_iter()
            .map(|h| AfXdpPort { h })
            .collect()
    }

    /// Folds the kernel's XDP_STATISTICS into the counters now (also done every
    /// [`STATS_EVERY`] empty receive polls).
    pub fn refresh_stats(&mut self) {
        for (i, q) in self.h.queues.iter_mut().enumerate() {
            q.fold_stats(self.h.counters.queue(self.h.first + i as u16));
        }
    }
}

impl Port for AfXdpPort {
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
        // While the link is down (or the device gone) retry the kick only now and then,
        // not on every poll.
        if q.kick_pending && (!q.down || q.idle_polls.is_multiple_of(4096)) {
            let was_down = q.down;
            let e = q.kick_tx();
            c.add_tx_errors(e);
            if q.down && !was_down {
                c.add_down_event();
            }
        }
        let max = max.min(u32::MAX as usize) as u32;
        // FILL has a slot for every receive frame, so this is never the limit in practice;
        // taking the minimum keeps the invariant that each frame read goes straight back.
        let fill_free = q.fill.prod_free(max);
        let avail = q.rx.cons_avail(max.min(fill_free));
        if avail == 0 {
            if q.fill.needs_wakeup() {
                // SAFETY: a zero-length, non-blocking recvfrom without buffer or address:
                // it only wakes the driver to refill from this socket's FILL ring.
                unsafe {
                    libc::recvfrom(
                        q.fd.as_raw_fd(),
                        ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        ptr::null_mut(),
                        ptr::null_mut(),
                    );
                }
            }
            q.idle_polls = q.idle_polls.wrapping_add(1);
            if q.idle_polls & (STATS_EVERY - 1) == 0 {
                q.fold_stats(c);
            }
            return 0;
        }
        let now = monotonic_ns();
        let (rx_base, fill_base) = (q.rx.cached_cons, q.fill.cached_prod);
        let (mut n, mut pushed, mut bytes, mut errors) = (0u32, 0usize, 0u64, 0u64);
        while n < avail {
            let Some(mut m) = pool.get() else {
                // The frame stays in the RX ring and is read on a later burst.
                c.add_rx_nombuf(1);
                break;
            };
            // SAFETY: descriptor `n < avail` was published by the kernel (producer read
            // with Acquire) and is not yet released; xdp_desc is plain data.
            let d = unsafe { ptr::read(q.rx.xdesc(rx_base, n)) };
            let start = d.addr as usize;
            let len = d.len as usize;
            if start.saturating_add(len) <= q.umem_len {
                let take = len.min(m.capacity());
                // SAFETY: `start + len <= umem_len` was checked, so the source lies inside
                // the UMEM mapping, and the kernel has handed this frame to us (it is out
                // of FILL until we put it back below); `m` has at least `take` bytes and
                // is heap memory, so the ranges do not overlap.
                unsafe {
                    ptr::copy_nonoverlapping(
                        q.umem.add(start),
                        m.data_mut_full().as_mut_ptr(),
                        take,
                    );
                }
                m.set_len(take);
                m.port = port_id;
                m.queue = queue;
                m.timestamp = now;
                // Truncated to the buffer: delivered and counted as an error, as af_packet does.
                errors += u64::from(take < len);
                bytes += take as u64;
                out.push(m);
                pushed += 1;
            } else {
                errors += 1;
                pool.put(m);
            }
            // SAFETY: FILL entry `n` after `fill_base` is free (`n < fill_free`) and we
            // are its only producer; it is published by `submit` below.
            unsafe { ptr::write(q.fill.addr(fill_base, n), d.addr & q.frame_mask) };
            n += 1;
        }
        q.rx.release(n);
        q.fill.submit(n);
        q.down &= pushed == 0;
        c.add_rx(pushed as u64, bytes);
        c.add_rx_errors(errors);
        pushed
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        let Some((q, c)) = self.h.queue_mut(queue) else {
            return 0;
        };
        q.reclaim();
        if q.down {
            // The link is down or the device gone: nothing submitted now would leave.
            // Drop the burst, counted (rx_burst retries the kick now and then and clears
            // `down` when the kernel takes frames again).
            let n = pkts.len();
            c.add_tx_errors(n as u64);
            pool.put_all(pkts);
            return n;
        }
        let want = pkts.len().min(q.tx_free.len()).min(u32::MAX as usize) as u32;
        let room = q.tx.prod_free(want).min(want) as usize;
        let base = q.tx.cached_prod;
        let (mut used, mut bytes, mut errors) = (0u32, 0u64, 0u64);
        for m in &pkts[..room] {
            let len = m.len();
            if len == 0 || len > q.frame_size {
                errors += 1; // cannot be sent: dropped and counted, as af_packet does
                continue;
            }
            // `room <= tx_free.len()` and each frame takes one, so this always succeeds.
            let Some(addr) = q.tx_free.pop() else {
                errors += 1;
                continue;
            };
            // SAFETY: `addr` is a free transmit frame (not in any ring) of `frame_size`
            // bytes inside the UMEM, and `len <= frame_size`; the Mbuf is heap memory.
            unsafe {
                ptr::copy_nonoverlapping(m.data().as_ptr(), q.umem.add(addr as usize), len);
            }
            // SAFETY: TX entry `used < room` after `base` is free and we are its only
            // producer; it is published by `submit` below.
            unsafe {
                ptr::write(
                    q.tx.xdesc(base, used),
                    libc::xdp_desc {
                        addr,
                        len: len as u32,
                        options: 0,
                    },
                );
            }
            used += 1;
            bytes += len as u64;
        }
        q.tx.submit(used);
        c.add_tx(u64::from(used), bytes);
        c.add_tx_errors(errors);
        for m in pkts.drain(..room) {
            pool.put(m);
        }
        if !q.down
            && ((used > 0 && q.tx.needs_wakeup())
                || q.kick_pending
                || (room == 0 && !pkts.is_empty()))
        {
            let e = q.kick_tx();
            c.add_tx_errors(e);
            if q.down {
                c.add_down_event();
            }
        }
        room
    }

    // stats, queues, queue_range, counters: what the handle knows.
    super::queue_handle_methods!(h);
}

#[cfg(test)]
mod tests;
