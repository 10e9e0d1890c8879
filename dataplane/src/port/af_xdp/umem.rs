//! One AF_XDP queue: its socket, the UMEM it registers, its four rings, and the transmit
//! kick, completion reclaim and statistics that work on them.

use super::bpf::XdpProgram;
use super::ring::Ring;
use super::{err, last_err, XdpConfig, MAX_KICKS};
use crate::port::sys::{getsockopt, owned, setsockopt};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::Arc;

/// How long a bind that finds its queue busy is retried: a killed predecessor's socket
/// releases the queue through deferred kernel work, within milliseconds.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The statistics last folded into the counters (the kernel's are cumulative).
#[derive(Default)]
struct Seen {
    missed: u64,
    rx_invalid: u64,
    tx_invalid: u64,
}

/// One queue: an XDP socket bound to (interface, queue), its UMEM and its four rings.
pub(super) struct Queue {
    // Field order is drop order: rings and UMEM go before the socket closes.
    pub(super) rx: Ring,
    pub(super) tx: Ring,
    pub(super) fill: Ring,
    comp: Ring,
    pub(super) umem: *mut u8,
    pub(super) umem_len: usize,
    pub(super) frame_mask: u64,
    pub(super) frame_size: usize,
    /// Free transmit frames (UMEM offsets).
    pub(super) tx_free: Vec<u64>,
    /// A kick left frames in the TX ring (copy mode sends 32 per `sendto`).
    pub(super) kick_pending: bool,
    /// The last kick found the link down or the device gone (`ENETDOWN`/`ENXIO`).
    pub(super) down: bool,
    pub(super) zero_copy: bool,
    pub(super) idle_polls: u32,
    seen: Seen,
    pub(super) fd: OwnedFd,
    pub(super) _prog: Arc<XdpProgram>,
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
    pub(super) fn open(
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
        // SAFETY: `raw` was just returned by a successful socket(2) and is handed to
        // nothing else.
        let fd = unsafe { owned(raw) };
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
        setsockopt(&fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(|e| {
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
            setsockopt(&fd, libc::SOL_XDP, opt, &n).map_err(|e| err(what, ifname, e))?;
        }
        // SAFETY: xdp_mmap_offsets is plain integers.
        let r = unsafe {
            getsockopt::<libc::xdp_mmap_offsets>(&fd, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS)
        };
        let off = match r {
            Ok((off, len)) if len == std::mem::size_of::<libc::xdp_mmap_offsets>() => off,
            _ => return Err(last_err("XDP_MMAP_OFFSETS (kernel < 5.4?)", ifname)),
        };
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
            down: false,
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
        // A socket of a process that just died (kill -9) still holds the queue until the
        // kernel's deferred release of its buffer pool runs: EBUSY for a few
        // milliseconds. Retry for up to BIND_BUSY_WAIT before calling the queue taken.
        let t0 = std::time::Instant::now();
        loop {
            // SAFETY: `sxdp` is a live sockaddr_xdp and we pass its size.
            let r = unsafe {
                libc::bind(
                    q.fd.as_raw_fd(),
                    (&sxdp as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r == 0 {
                return Ok(q);
            }
            let busy = io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY);
            if busy && t0.elapsed() < BIND_BUSY_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            let what = if busy {
                format!(
                    "bind queue {queue}: another AF_XDP socket still holds it after {} ms \
                     (another process on this interface?)",
                    BIND_BUSY_WAIT.as_millis()
                )
            } else {
                format!(
                    "bind queue {queue} ({}; does the interface have that many queues? \
                     veth: numrxqueues/numtxqueues)",
                    if zero_copy { "zero-copy" } else { "copy mode" }
                )
            };
            return Err(last_err(&what, ifname));
        }
    }

    /// `sendto` kicks until the kernel has taken every submitted frame, at most
    /// [`MAX_KICKS`] times.
    pub(super) fn kick_tx(&mut self) -> u64 {
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
                self.down = false;
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
                    self.down = true;
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
    pub(super) fn reclaim(&mut self) {
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
    pub(super) fn fold_stats(&mut self, c: &crate::port::QueueCounters) {
        // SAFETY: xdp_statistics is plain integers.
        let r = unsafe {
            getsockopt::<libc::xdp_statistics>(&self.fd, libc::SOL_XDP, libc::XDP_STATISTICS)
        };
        let Ok((st, _)) = r else {
            return;
        };
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
