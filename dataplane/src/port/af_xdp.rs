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
//! Every `unsafe` block of this backend is in this file, each with the invariant it relies
//! on.

use super::{Mbuf, MbufPool, Port, PortCounters, PortStats};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Empty receive polls between two reads of the kernel's `XDP_STATISTICS`.
pub const STATS_EVERY: u32 = 1024; // a power of two
/// Most `sendto` kicks in one `tx_burst` (copy mode sends 32 frames per kick).
const MAX_KICKS: usize = 8;

// linux/bpf.h: enum bpf_cmd, bpf_map_type, bpf_prog_type, bpf_attach_type, helpers.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_ANY: u64 = 0;
/// `sizeof(union bpf_attr)` in the 6.1 headers; the kernel accepts any size as long as
/// the bytes it does not know are zero.
const BPF_ATTR_SIZE: usize = 144;
// linux/bpf.h: enum xdp_action.
const XDP_PASS: i32 = 2;
// linux/if_link.h: XDP_FLAGS_*.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

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
    io::Error::new(e.kind(), format!("af_xdp {ifname}: {what}: {e}"))
}

fn last_err(what: &str, ifname: &str) -> io::Error {
    err(what, ifname, io::Error::last_os_error())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T and we pass its exact size; the kernel
    // only reads that many bytes during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `bpf(cmd, attr, size)`, `attr` being the first bytes of a `union bpf_attr`.
fn bpf(cmd: libc::c_long, attr: &mut [u8; BPF_ATTR_SIZE]) -> io::Result<RawFd> {
    // SAFETY: `attr` is a live, writable buffer of BPF_ATTR_SIZE bytes laid out as a
    // `union bpf_attr` (unused bytes zero), and every pointer stored in it refers to
    // memory the caller keeps alive across this call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), BPF_ATTR_SIZE) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as RawFd)
    }
}

fn put_u32(attr: &mut [u8], off: usize, v: u32) {
    attr[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8], off: usize, v: u64) {
    attr[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf(2)/socket(2) call and nothing
    // else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// One eBPF instruction (`struct bpf_insn`): opcode, dst (low nibble) and src (high
/// nibble) registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (dst & 0xf) | (src << 4);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// The steering program: `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`
/// with the map given by its descriptor.
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)      ; BPF_LDX | BPF_MEM | BPF_W: ctx->rx_queue_index
/// r1 = map_fd ll              ; BPF_LD | BPF_IMM | BPF_DW, src = BPF_PSEUDO_MAP_FD (2 slots)
/// r3 = 2                      ; BPF_ALU64 | BPF_MOV | BPF_K: XDP_PASS when no socket
/// call 51                     ; BPF_JMP | BPF_CALL: bpf_redirect_map
/// exit                        ; BPF_JMP | BPF_EXIT: r0 is the helper's result
/// ```
pub fn redirect_program(map_fd: i32) -> [u64; 6] {
    [
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(0xb7, 3, 0, 0, XDP_PASS),
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(0x95, 0, 0, 0, 0),
    ]
}

/// The XSKMAP, the program and its link to the interface, shared by every queue of a port.
/// Dropping it (with the last queue) closes the link, which detaches the program.
struct XdpProgram {
    map: OwnedFd,
    _prog: OwnedFd,
    link: Option<OwnedFd>,
    native: bool,
}

impl XdpProgram {
    fn load(ifname: &str, entries: u32) -> io::Result<Self> {
        let mut a = [0u8; BPF_ATTR_SIZE];
        put_u32(&mut a, 0, BPF_MAP_TYPE_XSKMAP); // map_type
        put_u32(&mut a, 4, 4); // key_size
        put_u32(&mut a, 8, 4); // value_size
        put_u32(&mut a, 12, entries.max(1)); // max_entries
        let map = owned(bpf(BPF_MAP_CREATE, &mut a).map_err(|e| {
            err(
                "bpf(BPF_MAP_CREATE XSKMAP) (needs CAP_BPF/CAP_SYS_ADMIN)",
                ifname,
                e,
            )
        })?);
        let insns = redirect_program(map.as_raw_fd());
        let license = b"Dual BSD/GPL\0";
        let name = b"sw_xsk_redirect\0";
        let mut log = vec![0u8; 0];
        let prog = loop {
            let mut a = [0u8; BPF_ATTR_SIZE];
            put_u32(&mut a, 0, BPF_PROG_TYPE_XDP); // prog_type
            put_u32(&mut a, 4, insns.len() as u32); // insn_cnt
            put_u64(&mut a, 8, insns.as_ptr() as u64); // insns
            put_u64(&mut a, 16, license.as_ptr() as u64); // license
            if !log.is_empty() {
                put_u32(&mut a, 24, 1); // log_level
                put_u32(&mut a, 28, log.len() as u32); // log_size
                put_u64(&mut a, 32, log.as_mut_ptr() as u64); // log_buf
            }
            a[48..48 + name.len()].copy_from_slice(name); // prog_name
            put_u32(&mut a, 68, BPF_XDP); // expected_attach_type
            match bpf(BPF_PROG_LOAD, &mut a) {
                Ok(fd) => break owned(fd),
                // Load again with the verifier's log for the error message.
                Err(_) if log.is_empty() => log = vec![0u8; 4096],
                Err(e) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    return Err(err(
                        &format!("bpf(BPF_PROG_LOAD) (verifier: {})", text.trim()),
                        ifname,
                        e,
                    ));
                }
            }
        };
        Ok(XdpProgram {
            map,
            _prog: prog,
            link: None,
            native: false,
        })
    }

    /// Attaches the program to `ifindex` with a BPF link, in `mode`.
    fn attach(&mut self, ifname: &str, ifindex: u32, mode: XdpMode) -> io::Result<()> {
        let tries: &[(u32, bool)] = match mode {
            XdpMode::Auto => &[(XDP_FLAGS_DRV_MODE, true), (XDP_FLAGS_SKB_MODE, false)],
            XdpMode::Native => &[(XDP_FLAGS_DRV_MODE, true)],
            XdpMode::Generic => &[(XDP_FLAGS_SKB_MODE, false)],
        };
        let mut last = None;
        for &(flags, native) in tries {
            let mut a = [0u8; BPF_ATTR_SIZE];
            put_u32(&mut a, 0, self._prog.as_raw_fd() as u32); // link_create.prog_fd
            put_u32(&mut a, 4, ifindex); // link_create.target_ifindex
            put_u32(&mut a, 8, BPF_XDP); // link_create.attach_type
            put_u32(&mut a, 12, flags); // link_create.flags
            match bpf(BPF_LINK_CREATE, &mut a) {
                Ok(fd) => {
                    self.link = Some(owned(fd));
                    self.native = native;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::Unsupported));
        let hint = if e.raw_os_error() == Some(libc::EBUSY) {
            " (another XDP program is attached to the interface)"
        } else {
            ""
        };
        Err(err(
            &format!("bpf(BPF_LINK_CREATE XDP, {mode:?}){hint}"),
            ifname,
            e,
        ))
    }

    /// Puts socket `fd` at `queue` in the XSKMAP.
    fn insert(&self, ifname: &str, queue: u32, fd: RawFd) -> io::Result<()> {
        let key = queue;
        let value = fd as u32;
        let mut a = [0u8; BPF_ATTR_SIZE];
        put_u32(&mut a, 0, self.map.as_raw_fd() as u32); // map_fd
        put_u64(&mut a, 8, &key as *const u32 as u64); // key
        put_u64(&mut a, 16, &value as *const u32 as u64); // value
        put_u64(&mut a, 24, BPF_ANY); // flags
        bpf(BPF_MAP_UPDATE_ELEM, &mut a)
            .map(drop)
            .map_err(|e| err(&format!("XSKMAP update for queue {queue}"), ifname, e))
    }
}

/// One mmapped ring: producer and consumer indexes, flags and descriptors in shared memory,
/// plus the cached copies of the indexes that only this side writes or has last seen.
struct Ring {
    map: *mut u8,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
}

impl Ring {
    /// Maps the ring of `entries` entries of `entry` bytes at page offset `pgoff`.
    fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry: usize,
        pgoff: libc::off_t,
    ) -> io::Result<Ring> {
        let map_len = off.desc as usize + entries as usize * entry;
        // SAFETY: mapping the ring the kernel allocated for this socket at its documented
        // page offset, no longer than the kernel's offsets and entry count say; the result
        // is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = map.cast::<u8>();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS for this very ring, so they lie
        // inside the mapping (the kernel sizes it as desc + entries * entry).
        let (producer, consumer, flags, desc) = unsafe {
            (
                map.add(off.producer as usize).cast::<AtomicU32>(),
                map.add(off.consumer as usize).cast::<AtomicU32>(),
                map.add(off.flags as usize).cast::<AtomicU32>(),
                map.add(off.desc as usize),
            )
        };
        let mut r = Ring {
            map,
            map_len,
            producer,
            consumer,
            flags,
            desc,
            mask: entries - 1,
            size: entries,
            cached_prod: 0,
            cached_cons: 0,
        };
        r.cached_prod = r.prod().load(Ordering::Acquire);
        r.cached_cons = r.cons().load(Ordering::Acquire);
        Ok(r)
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: `producer` points at the 4-byte aligned index inside the mapping, which
        // lives as long as `self`; the kernel and we only access it atomically.
        unsafe { &*self.producer }
    }

    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as for `prod`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `prod` (the flags word of the ring).
        let f = unsafe { &*self.flags };
        f.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: free entries (at least `want` if available without re-reading).
    fn prod_free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.cons().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Producer side: publishes `n` entries written after `cached_prod`.
    fn submit(&mut self, n: u32) {
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n);
            self.prod().store(self.cached_prod, Ordering::Release);
        }
    }

    /// Consumer side: entries ready to read, at most `max`.
    fn cons_avail(&mut self, max: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail == 0 {
            self.cached_prod = self.prod().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(max)
    }

    /// Consumer side: gives `n` read entries back.
    fn release(&mut self, n: u32) {
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n);
            self.cons().store(self.cached_cons, Ordering::Release);
        }
    }

    /// The `i`-th entry from `base` as a `u64` address (FILL and COMPLETION rings).
    fn addr(&self, base: u32, i: u32) -> *mut u64 {
        let slot = (base.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `slot < size`, and the mapping holds `size` entries of 8 bytes after
        // `desc` (8-byte aligned: the kernel places desc at an aligned offset).
        unsafe { self.desc.add(slot * 8).cast() }
    }

    /// The `i`-th entry from `base` as an `xdp_desc` (RX and TX rings).
    fn xdesc(&self, base: u32, i: u32) -> *mut libc::xdp_desc {
        let slot = (base.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `slot < size`, and the mapping holds `size` 16-byte descriptors after
        // `desc`.
        unsafe { self.desc.add(slot * 16).cast() }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly the mapping made in `Ring::map`, unmapped
        // only here, once; no pointer into it is used after `self` goes.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

/// The statistics last folded into the counters (the kernel's are cumulative).
#[derive(Default)]
struct Seen {
    missed: u64,
    rx_invalid: u64,
    tx_invalid: u64,
}

/// One queue: an XDP socket bound to (interface, queue), its UMEM and its four rings.
struct Queue {
    // Field order is drop order: rings and UMEM go before the socket closes.
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    umem: *mut u8,
    umem_len: usize,
    frame_mask: u64,
    frame_size: usize,
    /// Free transmit frames (UMEM offsets).
    tx_free: Vec<u64>,
    /// A kick left frames in the TX ring (copy mode sends 32 per `sendto`).
    kick_pending: bool,
    zero_copy: bool,
    idle_polls: u32,
    seen: Seen,
    fd: OwnedFd,
    _prog: Arc<XdpProgram>,
}

// SAFETY: the UMEM and ring mappings are owned exclusively by this Queue (no pointer into
// them is kept elsewhere between calls), so moving it to another thread moves sole
// ownership; the kernel side of the rings is thread-agnostic. XdpProgram holds only file
// descriptors.
unsafe impl Send for Queue {}

struct Umem(*mut u8, usize);

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: the anonymous mapping made in `Queue::open`, unmapped once; only reached
        // when `Queue::open` fails before a Queue takes it over.
        unsafe {
            libc::munmap(self.0.cast(), self.1);
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `umem`/`umem_len` are exactly the anonymous mapping registered in
        // `Queue::open`, unmapped only here; the kernel holds its own pin on the pages
        // until the socket (closed right after, with the fields) releases the UMEM.
        unsafe {
            libc::munmap(self.umem.cast(), self.umem_len);
        }
    }
}

impl Queue {
    fn open(
        ifname: &str,
        ifindex: u32,
        queue: u32,
        cfg: &XdpConfig,
        zero_copy: bool,
        prog: &Arc<XdpProgram>,
    ) -> io::Result<Self> {
        let n = cfg.descriptors;
        let fsz = cfg.frame_size;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last_err(
                "socket(AF_XDP) (needs CAP_NET_RAW, kernel >= 4.18)",
                ifname,
            ));
        }
        let fd = owned(raw);
        let frames = 2 * n as usize;
        let umem_len = frames * fsz as usize;
        // SAFETY: a fresh anonymous private mapping; the result is checked.
        let umem = unsafe {
            libc::mmap(
                ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(last_err("mmap UMEM", ifname));
        }
        let guard = Umem(umem.cast(), umem_len);
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: umem_len as u64,
            chunk_size: fsz,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(&fd, libc::XDP_UMEM_REG, &reg).map_err(|e| {
            err(
                "XDP_UMEM_REG (frame_size a power of two in 2048..=4096; memlock limit)",
                ifname,
                e,
            )
        })?;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"),
            (libc::XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"),
            (libc::XDP_RX_RING, "XDP_RX_RING"),
            (libc::XDP_TX_RING, "XDP_TX_RING"),
        ] {
            setsockopt(&fd, opt, &n).map_err(|e| err(what, ifname, e))?;
        }
        // SAFETY: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` and `len` are live and describe a buffer of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if r < 0 || len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
            return Err(last_err("XDP_MMAP_OFFSETS (kernel < 5.4?)", ifname));
        }
        let map = |o: &libc::xdp_ring_offset, entry: usize, pgoff: libc::off_t, what: &str| {
            Ring::map(&fd, o, n, entry, pgoff).map_err(|e| err(what, ifname, e))
        };
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let rx = map(&off.rx, desc, libc::XDP_PGOFF_RX_RING, "mmap RX ring")?;
        let tx = map(&off.tx, desc, libc::XDP_PGOFF_TX_RING, "mmap TX ring")?;
        let fill = map(
            &off.fr,
            8,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            "mmap FILL ring",
        )?;
        let comp = map(
            &off.cr,
            8,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            "mmap COMPLETION ring",
        )?;
        std::mem::forget(guard); // the Queue owns the UMEM mapping from here on
        let mut q = Queue {
            rx,
            tx,
            fill,
            comp,
            umem: umem.cast(),
            umem_len,
            frame_mask: !(u64::from(fsz) - 1),
            frame_size: fsz as usize,
            tx_free: (n as u64..2 * n as u64)
                .map(|i| i * u64::from(fsz))
                .collect(),
            kick_pending: false,
            zero_copy,
            idle_polls: 0,
            seen: Seen::default(),
            fd,
            _prog: prog.clone(),
        };
        // Every receive frame goes to the kernel before bind.
        let free = q.fill.prod_free(n);
        debug_assert_eq!(free, n);
        for i in 0..n {
            // SAFETY: `addr` points inside the FILL ring's mapping and we are its only
            // producer; the entries are published by `submit` below.
            unsafe { ptr::write(q.fill.addr(q.fill.cached_prod, i), u64::from(i * fsz)) };
        }
        q.fill.submit(n);
        let mode = if zero_copy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sxdp` is a live sockaddr_xdp and we pass its size.
        let r = unsafe {
            libc::bind(
                q.fd.as_raw_fd(),
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let what = format!(
                "bind queue {queue} ({}; does the interface have that many queues? \
                 veth: numrxqueues/numtxqueues)",
                if zero_copy { "zero-copy" } else { "copy mode" }
            );
            return Err(last_err(&what, ifname));
        }
        Ok(q)
    }

    /// `sendto` kicks until the kernel has taken every submitted frame, at most
    /// [`MAX_KICKS`] times.
    fn kick_tx(&mut self) -> u64 {
        let mut errors = 0;
        self.kick_pending = false;
        for _ in 0..MAX_KICKS {
            // SAFETY: a zero-length sendto without buffer or address: the kernel only
            // reads the TX ring this socket owns.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null(),
                    0,
                )
            };
            if r >= 0 {
                return errors;
            }
            match io::Error::last_os_error().raw_os_error().unwrap_or(0) {
                // More left (32 per call in copy mode), or the device is busy.
                libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR => {
                    self.kick_pending = true
                }
                // Link down: the frames stay in the ring until it comes back.
                libc::ENETDOWN | libc::ENXIO => {
                    self.kick_pending = true;
                    return errors;
                }
                _ => {
                    // EMSGSIZE / EINVAL: the kernel skipped a bad descriptor.
                    errors += 1;
                }
            }
        }
        errors
    }

    /// Takes completed transmit frames back into the free list.
    fn reclaim(&mut self) {
        let n = self.comp.cons_avail(self.comp.size);
        for i in 0..n {
            // SAFETY: entry `i < n` of the COMPLETION ring was published by the kernel
            // (producer read with Acquire) and is not yet released.
            let a = unsafe { ptr::read(self.comp.addr(self.comp.cached_cons, i)) };
            self.tx_free.push(a & self.frame_mask);
        }
        self.comp.release(n);
    }

    /// Folds the socket's XDP_STATISTICS into the counters (they are cumulative).
    fn fold_stats(&mut self, c: &super::QueueCounters) {
        // SAFETY: all-zero is a valid xdp_statistics (plain integers).
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and describe a buffer of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return;
        }
        // Kernels before 5.9 return the v1 struct (no ring-full counters): zero.
        let missed = st.rx_dropped + st.rx_ring_full;
        c.add_rx_missed(missed.saturating_sub(self.seen.missed));
        c.add_rx_errors(st.rx_invalid_descs.saturating_sub(self.seen.rx_invalid));
        c.add_tx_errors(st.tx_invalid_descs.saturating_sub(self.seen.tx_invalid));
        self.seen = Seen {
            missed,
            rx_invalid: st.rx_invalid_descs,
            tx_invalid: st.tx_invalid_descs,
        };
    }
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
        let Some(idx) = self.h.index(queue) else {
            return 0;
        };
        let port_id = self.h.port_id;
        let c = self.h.counters.queue(queue);
        let q = &mut self.h.queues[idx];
        if q.kick_pending {
            let e = q.kick_tx();
            c.add_tx_errors(e);
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
        c.add_rx(pushed as u64, bytes);
        c.add_rx_errors(errors);
        pushed
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        let Some(idx) = self.h.index(queue) else {
            return 0;
        };
        let c = self.h.counters.queue(queue);
        let q = &mut self.h.queues[idx];
        q.reclaim();
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
        if (used > 0 && q.tx.needs_wakeup()) || q.kick_pending || (room == 0 && !pkts.is_empty()) {
            let e = q.kick_tx();
            c.add_tx_errors(e);
        }
        room
    }

    fn stats(&self) -> PortStats {
        self.h.stats()
    }

    fn queues(&self) -> u16 {
        self.h.nq
    }

    fn queue_range(&self) -> std::ops::Range<u16> {
        self.h.range()
    }

    fn counters(&self) -> Arc<PortCounters> {
        self.h.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::port::af_packet::{AfPacketPort, RingConfig};
    use crate::port::testnet::{self, Netns};
    use std::time::{Duration, Instant};

    const MARKER: &[u8] = b"statewall-af-xdp-test";

    fn udp_frame(i: u16) -> Vec<u8> {
        let a = format!("10.1.{}.{}:{}", i >> 8, i & 0xff, 1000 + i);
        let b = format!("10.2.0.1:{}", 2000 + i % 7);
        PacketSpec::udp(a.parse().unwrap(), b.parse().unwrap())
            .payload(MARKER)
            .to_vec()
    }

    /// Opens an af_xdp port inside `which`; None (after printing SKIP) when the kernel or
    /// the privileges do not allow AF_XDP or BPF.
    fn open_xdp(
        ns: &Netns,
        which: &str,
        ifname: &str,
        queues: u16,
        cfg: XdpConfig,
        test: &str,
    ) -> Option<AfXdpPort> {
        let ifname = ifname.to_string();
        match ns.run_in(which, move || AfXdpPort::open(&ifname, queues, &cfg)) {
            Ok(p) => Some(p),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EPERM | libc::EACCES | libc::ENOSYS)
                ) =>
            {
                prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF ({e})"));
                None
            }
            Err(e) => panic!("open af_xdp: {e}"),
        }
    }

    fn open_packet(ns: &Netns, which: &str, ifname: &str) -> AfPacketPort {
        let ifname = ifname.to_string();
        ns.run_in(which, move || {
            AfPacketPort::open(&ifname, 1, &RingConfig::default()).expect("open af_packet")
        })
    }

    fn send_all<P: Port>(port: &mut P, pool: &mut MbufPool, frames: &[Vec<u8>]) -> usize {
        let mut pkts = Vec::with_capacity(frames.len());
        for f in frames {
            let mut m = pool.get().unwrap();
            m.copy_from(f);
            pkts.push(m);
        }
        let mut sent = 0;
        let t0 = Instant::now();
        while !pkts.is_empty() && t0.elapsed() < Duration::from_secs(2) {
            sent += port.tx_burst(0, &mut pkts, pool);
        }
        pool.put_all(&mut pkts);
        sent
    }

    fn has_xdp(ns: &Netns, which: &str, dev: &str) -> bool {
        let s = ns.link_show(which, dev);
        s.contains(" xdp") || s.contains("prog/xdp")
    }

    #[test]
    fn port_af_xdp_program_encoding() {
        let p = redirect_program(7);
        let b: Vec<[u8; 8]> = p.iter().map(|i| i.to_ne_bytes()).collect();
        assert_eq!(b[0], [0x61, 0x12, 16, 0, 0, 0, 0, 0]); // r2 = *(u32 *)(r1 + 16)
        assert_eq!(b[1], [0x18, 0x11, 0, 0, 7, 0, 0, 0]); // r1 = map fd 7
        assert_eq!(b[2], [0; 8]);
        assert_eq!(b[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0]); // r3 = XDP_PASS
        assert_eq!(b[4], [0x85, 0, 0, 0, 51, 0, 0, 0]); // call bpf_redirect_map
        assert_eq!(b[5], [0x95, 0, 0, 0, 0, 0, 0, 0]); // exit
    }

    #[test]
    fn port_af_xdp_rejects_bad_config() {
        let e = AfXdpPort::open("lo", 0, &XdpConfig::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("queues"), "{e}");
        let e = AfXdpPort::open("lo", 1, &XdpConfig::with_descriptors(100))
            .err()
            .unwrap();
        assert!(e.to_string().contains("power of two"), "{e}");
        let cfg = XdpConfig {
            frame_size: 1024,
            ..Default::default()
        };
        let e = AfXdpPort::open("lo", 1, &cfg).err().unwrap();
        assert!(e.to_string().contains("frame_size"), "{e}");
    }

    fn veth_round_trip(test: &str, mode: XdpMode) {
        let Some(ns) = Netns::new(test) else {
            return;
        };
        let (va, vb) = (ns.veth_a(), ns.veth_b());
        let cfg = XdpConfig {
            descriptors: 256,
            mode,
            ..Default::default()
        };
        let Some(mut x) = open_xdp(&ns, &ns.a, &va, 1, cfg, test) else {
            return;
        };
        if mode == XdpMode::Generic {
            assert!(!x.native());
        }
        println!("{test}: native={} zero_copy={}", x.native(), x.zero_copy());
        assert!(has_xdp(&ns, &ns.a, &va), "{}", ns.link_show(&ns.a, &va));
        let mut peer = open_packet(&ns, &ns.b, &vb);
        let mut pool = MbufPool::new(1024);
        let frames: Vec<Vec<u8>> = (0..300).map(udp_frame).collect();
        let total: u64 = frames.iter().map(|f| f.len() as u64).sum();

        // Peer -> af_xdp: more frames than the RX ring holds, read while they arrive.
        assert_eq!(send_all(&mut peer, &mut pool, &frames[..200]), 200);
        let got = testnet::receive(&mut x, &mut pool, 200, 3000, MARKER);
        assert_eq!(got.len(), 200);
        assert_eq!(send_all(&mut peer, &mut pool, &frames[200..]), 100);
        let got2 = testnet::receive(&mut x, &mut pool, 100, 3000, MARKER);
        let got: Vec<Vec<u8>> = got.into_iter().chain(got2).map(|(_, f)| f).collect();
        assert_eq!(got, frames, "bytes and order preserved");
        x.refresh_stats();
        let s = x.stats();
        assert!(s.rx_packets >= 300, "{s:?}");
        assert!(s.rx_bytes >= total, "{s:?}");
        assert_eq!((s.rx_errors, s.rx_nombuf, s.rx_missed), (0, 0, 0), "{s:?}");

        // af_xdp -> peer, more than the TX ring holds.
        assert_eq!(send_all(&mut x, &mut pool, &frames), 300);
        let got: Vec<Vec<u8>> = testnet::receive(&mut peer, &mut pool, 300, 3000, MARKER)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got.len(), 300);
        assert_eq!(got, frames);
        x.refresh_stats();
        let s = x.stats();
        assert_eq!((s.tx_packets, s.tx_bytes, s.tx_errors), (300, total, 0));
        assert_eq!(pool.outstanding(), 0);
        assert_eq!(x.counters().total(), s);

        // A frame that does not fit a UMEM frame is dropped and counted.
        let mut big_pool = MbufPool::with_size(1, 4096);
        let mut m = big_pool.get().unwrap();
        m.set_len(3000);
        let mut pkts = vec![m];
        assert_eq!(x.tx_burst(0, &mut pkts, &mut big_pool), 1);
        assert!(pkts.is_empty());
        assert_eq!(big_pool.outstanding(), 0);
        assert_eq!(x.stats().tx_errors, 1);
        assert_eq!(x.stats().tx_packets, 300);

        // Dropping the port detaches the program.
        drop(x);
        let t0 = Instant::now();
        while has_xdp(&ns, &ns.a, &va) && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!has_xdp(&ns, &ns.a, &va), "{}", ns.link_show(&ns.a, &va));
    }

    #[test]
    fn port_af_xdp_veth_round_trip() {
        veth_round_trip("port_af_xdp_veth_round_trip", XdpMode::Auto);
    }

    #[test]
    fn port_af_xdp_veth_round_trip_generic() {
        veth_round_trip("port_af_xdp_veth_round_trip_generic", XdpMode::Generic);
    }

    #[test]
    fn port_af_xdp_multi_queue_split() {
        let test = "port_af_xdp_multi_queue_split";
        let Some(ns) = Netns::with_queues(test, 2) else {
            return;
        };
        let (va, vb) = (ns.veth_a(), ns.veth_b());
        let cfg = XdpConfig::with_descriptors(256);
        let Some(x) = open_xdp(&ns, &ns.a, &va, 2, cfg, test) else {
            return;
        };
        let mut handles = x.split_queues();
        assert_eq!(handles.len(), 2);
        assert_eq!(handles[1].queue_range(), 1..2);
        assert_eq!(handles[1].queues(), 2);
        let mut peer = open_packet(&ns, &ns.b, &vb);
        let mut pool = MbufPool::new(1024);
        let frames: Vec<Vec<u8>> = (0..128).map(udp_frame).collect();
        assert_eq!(send_all(&mut peer, &mut pool, &frames), 128);
        let mut got = Vec::new();
        let t0 = Instant::now();
        while got.len() < frames.len() && t0.elapsed() < Duration::from_secs(3) {
            for h in &mut handles {
                got.extend(testnet::receive(h, &mut pool, 1, 10, MARKER));
            }
        }
        assert_eq!(got.len(), 128, "every queue has a socket");
        let total: u64 = handles.iter().map(|h| h.stats().rx_packets).sum();
        assert!(total >= 128);
        assert_eq!(handles[0].counters().total().rx_packets, total);
        // Handles of one port share the program: it stays until the last one drops.
        let last = handles.pop().unwrap();
        drop(handles);
        assert!(has_xdp(&ns, &ns.a, &va));
        drop(last);
        let t0 = Instant::now();
        while has_xdp(&ns, &ns.a, &va) && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!has_xdp(&ns, &ns.a, &va));
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn port_af_xdp_too_many_queues_is_an_error() {
        let test = "port_af_xdp_too_many_queues_is_an_error";
        let Some(ns) = Netns::new(test) else {
            return;
        };
        let va = ns.veth_a();
        let ifname = va.clone();
        let r = ns.run_in(&ns.a, move || {
            AfXdpPort::open(&ifname, 2, &XdpConfig::with_descriptors(64)).map(drop)
        });
        match r {
            Ok(()) => panic!("a 1-queue veth accepted 2 queues"),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EPERM)) => {
                prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF ({e})"));
            }
            Err(e) => {
                assert!(e.to_string().contains("bind queue 1"), "{e}");
                // The failed open detached its program.
                assert!(!has_xdp(&ns, &ns.a, &va));
            }
        }
    }

    /// Polls queue 0 of `rx` for `secs` seconds; returns (frames, elapsed seconds).
    fn drain_for<P: Port>(rx: &mut P, secs: f64) -> (u64, f64) {
        let mut pool = MbufPool::new(1024);
        let mut out = Vec::with_capacity(64);
        let t0 = Instant::now();
        let mut got = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            let n = rx.rx_burst(0, &mut pool, &mut out, 64);
            got += n as u64;
            pool.put_all(&mut out);
            if n == 0 {
                std::thread::yield_now();
            }
        }
        (got, t0.elapsed().as_secs_f64())
    }

    /// Frames per second received on one veth end, af_xdp vs af_packet, with the same
    /// af_packet sender flooding from the peer. `cargo test -p dataplane --release
    /// port_af_xdp_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn port_af_xdp_throughput() {
        let test = "port_af_xdp_throughput";
        let secs = 2.0;
        for backend in ["af_xdp(auto)", "af_xdp(generic)", "af_packet"] {
            let Some(ns) = Netns::new(test) else {
                return;
            };
            let (va, vb) = (ns.veth_a(), ns.veth_b());
            let (mut xdp, mut pkt) = (None, None);
            if backend == "af_packet" {
                pkt = Some(open_packet(&ns, &ns.a, &va));
            } else {
                let mode = if backend.contains("generic") {
                    XdpMode::Generic
                } else {
                    XdpMode::Auto
                };
                let cfg = XdpConfig {
                    mode,
                    ..Default::default()
                };
                match open_xdp(&ns, &ns.a, &va, 1, cfg, test) {
                    Some(p) => xdp = Some(p),
                    None => return,
                }
            }
            let mut peer = open_packet(&ns, &ns.b, &vb);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop2 = stop.clone();
            let sender = std::thread::spawn(move || {
                let mut pool = MbufPool::new(256);
                let frame = udp_frame(1);
                let mut pkts = Vec::with_capacity(64);
                let mut sent = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    while pkts.len() < 64 {
                        let mut m = pool.get().unwrap();
                        m.copy_from(&frame);
                        pkts.push(m);
                    }
                    sent += peer.tx_burst(0, &mut pkts, &mut pool) as u64;
                }
                sent
            });
            let (got, el, missed) = match (xdp.as_mut(), pkt.as_mut()) {
                (Some(p), _) => {
                    let (g, el) = drain_for(p, secs);
                    p.refresh_stats();
                    (g, el, p.stats().rx_missed)
                }
                (None, Some(p)) => {
                    let (g, el) = drain_for(p, secs);
                    p.refresh_stats();
                    (g, el, p.stats().rx_missed)
                }
                _ => unreachable!(),
            };
            stop.store(true, Ordering::Relaxed);
            let sent = sender.join().unwrap();
            println!(
                "THROUGHPUT {backend:>16}: {:>9.0} frames/s received ({got} in {el:.2}s; \
                 sender {:.0} frames/s; rx_missed {missed})",
                got as f64 / el,
                sent as f64 / el
            );
        }
    }
}
