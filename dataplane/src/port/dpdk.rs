//! DPDK ports (cargo feature `dpdk`): any DPDK poll-mode driver — a NIC bound to
//! vfio-pci, or a virtual device such as `net_memif`, `net_null`, `net_ring`, `net_pcap`.
//!
//! * FFI: every call into DPDK goes through the C shim in `dpdk/shim.c` (built by
//!   `build.rs` with the flags pkg-config gives for libdpdk). The shim turns DPDK's
//!   static-inline fast path (`rte_eth_rx_burst`, `rte_eth_tx_burst`, mbuf accessors,
//!   alloc/append/free) into real symbols, and wraps the control path (`rte_eth_dev_configure`
//!   with symmetric RSS, queue setup, start, stats) in functions taking plain integers, so
//!   no DPDK struct is laid out on the Rust side. All of the crate's DPDK `unsafe` is in
//!   this file.
//! * EAL: [`eal_init`] once per process, with the operator's arguments verbatim
//!   (`[dpdk] eal_args`); DPDK cannot initialise its EAL twice in one process.
//! * Zero-copy: a received `rte_mbuf` becomes an [`Mbuf`] that points at the mbuf's own
//!   data (see `mbuf.rs`); dropping it, or `MbufPool::put`, frees it to its mempool, and
//!   `tx_burst` hands it back to the driver without a copy. Buffers from the worker's own
//!   pool (REJECT replies built elsewhere, frames from another backend) are copied into a
//!   fresh mbuf from the queue's mempool on transmit: one copy, only on that path.
//! * Queues: one mempool and one rx/tx queue pair per worker. With more than one queue
//!   the device is configured for RSS with the symmetric Toeplitz key (0x6d5a repeated)
//!   and a redirection table of `i % queues`, so both directions of a connection reach
//!   the same queue and worker, and the workers can compute the same placement in
//!   software ([`crate::steer::rss`]) for what the device cannot place: ICMP errors (hashed by
//!   their outer header) and datagrams reassembled from fragments (hashed by addresses)
//!   are handed to the worker owning their connection. The placement is checked per
//!   packet rather than trusted (a driver may hash differently), so a device that steers
//!   otherwise costs hand-offs, never correctness. Devices without RSS (memif, null)
//!   leave steering to the peer: every packet is checked the same way.
//! * Counters: rx/tx packets and bytes are counted per queue in software at each burst;
//!   the device-only counters (`imissed`, `ierrors`, `oerrors`, `rx_nombuf`) come from
//!   `rte_eth_stats_get`, polled every [`STATS_POLL_BURSTS`] rx polls by the handle that
//!   owns queue 0 and added to queue 0's counters.
//! * Multi-segment (chained) mbufs are not supported: only the first segment is seen.
//!   Configure jumbo frames off (the default).

// `unsafe` is denied crate-wide (lib.rs); this backend needs it for the FFI to DPDK and its mbufs (with dpdk/tests.rs).
#![allow(unsafe_code)]

use super::{Mbuf, MbufPool, Port, PortCounters, PortStats};
use crate::steer::rss::{RssModel, RssTypes};
use crate::steer::Steering;
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Largest burst handled per call (the worker's burst is at most 256).
pub const MAX_BURST: usize = 256;
/// The handle of queue 0 refreshes the device counters every this many rx polls (a power
/// of two).
pub const STATS_POLL_BURSTS: u32 = 1024;
/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data room plus the 128-byte headroom.
const MBUF_DATA_ROOM: u16 = 2048 + 128;
const MEMPOOL_CACHE: u32 = 256;

/// Opaque `struct rte_mbuf`.
#[repr(C)]
pub(crate) struct RteMbufRaw {
    _opaque: [u8; 0],
}

/// Opaque `struct rte_mempool`.
#[repr(C)]
struct RteMempool {
    _opaque: [u8; 0],
}

extern "C" {
    fn sw_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    fn sw_errno() -> c_int;
    fn sw_strerror(e: c_int) -> *const c_char;
    fn sw_eal_cleanup() -> c_int;
    fn sw_thread_register() -> c_int;
    fn sw_dev_count_avail() -> c_uint;
    fn sw_port_by_name(name: *const c_char, port: *mut u16) -> c_int;
    fn sw_port_socket(port: u16) -> c_int;
    fn sw_port_max_queues(port: u16, rxq: *mut u16, txq: *mut u16) -> c_int;
    fn sw_pool_create(
        name: *const c_char,
        n: c_uint,
        cache: c_uint,
        data_room: u16,
        socket: c_int,
    ) -> *mut RteMempool;
    fn sw_port_configure(
        port: u16,
        nb_rxq: u16,
        nb_txq: u16,
        nb_rxd: *mut u16,
        nb_txd: *mut u16,
        socket: c_int,
        pools: *const *mut RteMempool,
    ) -> c_int;
    fn sw_port_rss(port: u16, nb_rxq: u16, rss_hf: *mut u64, reta_size: *mut u16) -> c_int;
    fn sw_softrss(tuple: *mut u32, words: u32, key: *const u8) -> u32;
    fn sw_port_link_up(port: u16) -> c_int;
    fn sw_port_stop(port: u16) -> c_int;
    fn sw_port_close(port: u16) -> c_int;
    fn sw_port_stats(port: u16, out: *mut u64) -> c_int;
    fn sw_rx_burst(
        port: u16,
        q: u16,
        pkts: *mut *mut RteMbufRaw,
        data: *mut *mut u8,
        len: *mut u32,
        room: *mut u32,
        csum_ok: *mut u8,
        n: u16,
    ) -> u16;
    fn sw_tx_burst(port: u16, q: u16, pkts: *mut *mut RteMbufRaw, n: u16) -> u16;
    fn sw_mbuf_from(pool: *mut RteMempool, src: *const u8, len: u32) -> *mut RteMbufRaw;
    fn sw_mbuf_set_len(m: *mut RteMbufRaw, len: u32);
    fn sw_mbuf_free(m: *mut RteMbufRaw);
}

/// A DPDK failure, with what was being done and DPDK's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DpdkError(String);

fn strerror(e: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string for any value; we copy it out at once.
    unsafe { CStr::from_ptr(sw_strerror(e.abs())) }
        .to_string_lossy()
        .into_owned()
}

fn rte_errno() -> c_int {
    // SAFETY: reads DPDK's per-thread rte_errno; no preconditions.
    unsafe { sw_errno() }
}

fn check(what: impl fmt::Display, r: c_int) -> Result<(), DpdkError> {
    if r < 0 {
        Err(DpdkError(format!("{what}: {}", strerror(r))))
    } else {
        Ok(())
    }
}

// ---- EAL --------------------------------------------------------------------------

static EAL: OnceLock<Result<(), String>> = OnceLock::new();
static OPEN_DEVICES: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

/// Initialises DPDK's EAL with `args` verbatim (no program name: `statewall` is put
/// first). Only the first call in a process initialises; later calls return its result,
/// whatever their arguments (DPDK cannot be initialised twice).
pub fn eal_init<S: AsRef<str>>(args: &[S]) -> Result<(), DpdkError> {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    EAL.get_or_init(|| {
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once("statewall").chain(args.iter().map(String::as_str)) {
            owned.push(CString::new(a).map_err(|_| format!("eal_args: {a:?} contains NUL"))?);
        }
        // EAL keeps pointers into argv (e.g. devargs) for the life of the process: leak
        // the strings and the array on purpose (once per process).
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        argv.push(ptr::null_mut());
        let argv = ManuallyDrop::new(argv);
        // SAFETY: argv is a NULL-terminated array of argc valid, NUL-terminated, leaked
        // (so never freed) C strings; this runs once per process (OnceLock), as DPDK needs.
        let r = unsafe { sw_eal_init((argv.len() - 1) as c_int, argv.as_ptr().cast_mut()) };
        if r < 0 {
            Err(format!(
                "rte_eal_init failed: {} (eal_args = {args:?})",
                strerror(rte_errno())
            ))
        } else {
            Ok(())
        }
    })
    .clone()
    .map_err(DpdkError)
}

/// Whether [`eal_init`] has succeeded in this process.
pub fn eal_initialized() -> bool {
    matches!(EAL.get(), Some(Ok(())))
}

/// Number of DPDK ethernet ports available (after [`eal_init`]).
pub fn port_count() -> u32 {
    if !eal_initialized() {
        return 0;
    }
    // SAFETY: EAL is initialised; the call only reads the device table.
    unsafe { sw_dev_count_avail() }
}

/// Releases EAL resources (hugepage files, runtime directory) at the end of the process.
/// Refused while a port is open. Every [`Mbuf`] received from DPDK must have been dropped
/// before (workers drop theirs with their pools when they stop).
pub fn eal_cleanup() -> Result<(), DpdkError> {
    if !eal_initialized() {
        return Ok(());
    }
    let open = OPEN_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if !open.is_empty() {
        return Err(DpdkError(format!(
            "rte_eal_cleanup: ports {open:?} are still open"
        )));
    }
    // SAFETY: EAL was initialised and no device is open; per the contract above no mbuf
    // is alive, so nothing references EAL memory after this.
    check("rte_eal_cleanup", unsafe { sw_eal_cleanup() })
}

// ---- mbufs ------------------------------------------------------------------------

/// An owned `rte_mbuf` (single segment), with its data pointer and room cached at
/// receive so that reading a frame needs no call into DPDK.
pub(crate) struct RteMbuf {
    m: NonNull<RteMbufRaw>,
    data: NonNull<u8>,
    room: u32,
}

// SAFETY: an RteMbuf is the sole owner of its mbuf; mempools are thread-safe (the default
// ring ops are multi-producer/consumer), so freeing from another thread is allowed.
unsafe impl Send for RteMbuf {}

impl fmt::Debug for RteMbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RteMbuf({:p}, room {})", self.m, self.room)
    }
}

impl RteMbuf {
    /// The bytes from the data pointer to the end of the buffer.
    #[inline]
    pub(crate) fn room(&self) -> &[u8] {
        // SAFETY: `data..data+room` lies inside the mbuf's buffer (computed by the shim
        // from buf_len and data_off at receive), which we own for our lifetime.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.room as usize) }
    }

    /// The same, mutable.
    #[inline]
    pub(crate) fn room_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `room`; `&mut self` makes this the only reference, and a received
        // mbuf is not shared (refcount 1, not an indirect/external buffer for vdevs we use).
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.room as usize) }
    }

    /// Sets the frame length (data_len and pkt_len); `len <= room`.
    #[inline]
    pub(crate) fn set_len(&mut self, len: u32) {
        debug_assert!(len <= self.room);
        // SAFETY: we own the mbuf; the shim writes two header fields.
        unsafe { sw_mbuf_set_len(self.m.as_ptr(), len.min(self.room)) }
    }

    #[inline]
    fn as_raw(&self) -> *mut RteMbufRaw {
        self.m.as_ptr()
    }

    /// Gives up ownership (the driver took the mbuf).
    #[inline]
    fn into_raw(self) -> *mut RteMbufRaw {
        ManuallyDrop::new(self).m.as_ptr()
    }
}

impl Drop for RteMbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and drop it once; its mempool is never freed.
        unsafe { sw_mbuf_free(self.m.as_ptr()) }
    }
}

// ---- devices ----------------------------------------------------------------------

/// Options of one DPDK port.
#[derive(Debug, Clone)]
pub struct DpdkPortConfig {
    /// Rx and tx queues (one per worker).
    pub queues: u16,
    /// Descriptors per rx and tx queue (adjusted to the device's limits).
    pub descriptors: u16,
    /// Mbufs per queue's mempool (besides the descriptors, which are added).
    pub pool_size: u32,
    /// NUMA socket for the mempools and rings; None = the device's.
    pub socket_id: Option<i32>,
    /// How long `open` waits for the link to come up (memif: the peer to connect).
    pub link_wait: Duration,
}

impl Default for DpdkPortConfig {
    fn default() -> Self {
        DpdkPortConfig {
            queues: 1,
            descriptors: 1024,
            pool_size: 4096,
            socket_id: None,
            link_wait: Duration::from_secs(5),
        }
    }
}

/// The device's own counters (`struct rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames dropped by the device (rx ring full).
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Frames that failed to send.
    pub oerrors: u64,
    /// Frames dropped for lack of an mbuf.
    pub rx_nombuf: u64,
}

/// A started device; stopped and closed when the last queue handle is dropped.
struct Device {
    port_id: u16,
    /// One mempool per queue; never freed (mbufs may outlive the device), and
    /// only handed to DPDK calls.
    pools: Vec<NonNull<RteMempool>>,
}

// SAFETY: the mempool pointers are only passed to DPDK calls, which are thread-safe for
// mempools; the device itself is only stopped/closed in Drop, once.
unsafe impl Send for Device {}
// SAFETY: as above: &Device only exposes the port id and the pool pointers.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the port was started by `DpdkPort::open` and every queue handle is gone
        // (this is the last Arc), so no burst call runs on it concurrently.
        unsafe {
            sw_port_stop(self.port_id);
            sw_port_close(self.port_id);
        }
        let mut open = OPEN_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|&p| p != self.port_id);
    }
}

fn device_stats(port_id: u16) -> Result<DeviceStats, DpdkError> {
    let mut v = [0u64; 8];
    // SAFETY: `v` has the 8 slots the shim writes; rte_eth_stats_get is safe to call from
    // any thread on a started port.
    check("rte_eth_stats_get", unsafe {
        sw_port_stats(port_id, v.as_mut_ptr())
    })?;
    Ok(DeviceStats {
        ipackets: v[0],
        opackets: v[1],
        ibytes: v[2],
        obytes: v[3],
        imissed: v[4],
        ierrors: v[5],
        oerrors: v[6],
        rx_nombuf: v[7],
    })
}

/// Per-handle scratch arrays for the shim's burst calls (no allocation per burst).
struct Scratch {
    pkts: Box<[*mut RteMbufRaw; MAX_BURST]>,
    data: Box<[*mut u8; MAX_BURST]>,
    len: Box<[u32; MAX_BURST]>,
    room: Box<[u32; MAX_BURST]>,
    csum_ok: Box<[u8; MAX_BURST]>,
    fresh: Box<[bool; MAX_BURST]>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            pkts: Box::new([ptr::null_mut(); MAX_BURST]),
            data: Box::new([ptr::null_mut(); MAX_BURST]),
            len: Box::new([0; MAX_BURST]),
            room: Box::new([0; MAX_BURST]),
            csum_ok: Box::new([0; MAX_BURST]),
            fresh: Box::new([false; MAX_BURST]),
        }
    }
}

/// A DPDK port, or (after [`DpdkPort::split_queues`]) one queue of it.
pub struct DpdkPort {
    name: String,
    device: String,
    dev: Arc<Device>,
    port_id: u16,
    first: u16,
    count: u16,
    nq: u16,
    counters: Arc<PortCounters>,
    scratch: Scratch,
    polls: u32,
    registered: bool,
    /// Device counters already added to queue 0 (only the handle serving queue 0).
    seen: DeviceStats,
    /// The device's RSS as configured (None: no RSS, the peer or driver steers).
    rss: Option<RssModel>,
}

// SAFETY: the scratch arrays hold raw pointers only during a burst call (never between
// calls), and the device is Send + Sync; a handle is used by one thread at a time.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    /// Opens the DPDK port called `device` (a vdev name such as `net_memif0`, or a PCI
    /// address) as statewall port `name`: one mempool and one rx/tx queue pair per queue,
    /// symmetric RSS when there is more than one queue, promiscuous, started. Waits up to
    /// `cfg.link_wait` for the link. [`eal_init`] must have succeeded.
    pub fn open(name: &str, device: &str, cfg: &DpdkPortConfig) -> Result<DpdkPort, DpdkError> {
        if !eal_initialized() {
            return Err(DpdkError(
                "DPDK's EAL is not initialised (set [dpdk] eal_args)".into(),
            ));
        }
        let cname = CString::new(device)
            .map_err(|_| DpdkError(format!("device {device:?} contains NUL")))?;
        let mut port_id = 0u16;
        // SAFETY: cname is a valid C string and port_id a valid out pointer.
        let r = unsafe { sw_port_by_name(cname.as_ptr(), &mut port_id) };
        if r < 0 {
            return Err(DpdkError(format!(
                "no DPDK port named {device:?} ({} ports available; a vdev needs \
                 --vdev={device},... and a NIC -a <PCI address> in [dpdk] eal_args)",
                port_count()
            )));
        }
        {
            let mut open = OPEN_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
            if open.contains(&port_id) {
                return Err(DpdkError(format!("DPDK port {device:?} is already open")));
            }
            open.push(port_id);
        }
        let res = Self::start(name, device, port_id, cfg);
        if res.is_err() {
            let mut open = OPEN_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|&p| p != port_id);
        }
        res
    }

    fn start(
        name: &str,
        device: &str,
        port_id: u16,
        cfg: &DpdkPortConfig,
    ) -> Result<DpdkPort, DpdkError> {
        let queues = cfg.queues.max(1);
        let (mut max_rx, mut max_tx) = (0u16, 0u16);
        // SAFETY: port_id is a valid port; the out pointers are valid.
        let r = unsafe { sw_port_max_queues(port_id, &mut max_rx, &mut max_tx) };
        check(format_args!("{device}: rte_eth_dev_info_get"), r)?;
        if queues > max_rx.min(max_tx) {
            return Err(DpdkError(format!(
                "{device}: {queues} queues requested (one per worker), the device has at most \
                 {} rx and {} tx queues",
                max_rx, max_tx
            )));
        }
        // SAFETY: port_id is a valid port (found by name); the call reads its socket.
        let socket = cfg
            .socket_id
            .unwrap_or_else(|| unsafe { sw_port_socket(port_id) });
        let n = cfg.pool_size + 2 * u32::from(cfg.descriptors) + 2 * MAX_BURST as u32;
        let mut pools = Vec::with_capacity(queues.into());
        for q in 0..queues {
            let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
            let pname = CString::new(format!("sw{port_id}q{q}s{seq}")).expect("no NUL");
            // SAFETY: pname is a valid C string (DPDK copies it); the other arguments are
            // plain values. A NULL result is checked below.
            let p = unsafe {
                sw_pool_create(
                    pname.as_ptr(),
                    n,
                    MEMPOOL_CACHE.min(n / 2),
                    MBUF_DATA_ROOM,
                    socket,
                )
            };
            let p = NonNull::new(p).ok_or_else(|| {
                DpdkError(format!(
                    "{device}: rte_pktmbuf_pool_create of {n} mbufs for queue {q}: {} \
                     (give EAL more memory: -m / --socket-mem)",
                    strerror(rte_errno())
                ))
            })?;
            pools.push(p);
        }
        let raw: Vec<*mut RteMempool> = pools.iter().map(|p| p.as_ptr()).collect();
        let (mut rxd, mut txd) = (cfg.descriptors, cfg.descriptors);
        // SAFETY: `raw` holds `queues` valid mempools; rxd/txd are valid in/out pointers;
        // the port is not started yet and nobody else uses it (OPEN_DEVICES).
        let r = unsafe {
            sw_port_configure(
                port_id,
                queues,
                queues,
                &mut rxd,
                &mut txd,
                socket,
                raw.as_ptr(),
            )
        };
        check(
            format_args!("{device}: configuring {queues} queues of {rxd} descriptors"),
            r,
        )?;
        let dev = Arc::new(Device { port_id, pools });
        let (mut rss_hf, mut reta_size) = (0u64, 0u16);
        // SAFETY: the port is configured and started; the out pointers are valid.
        let r = unsafe { sw_port_rss(port_id, queues, &mut rss_hf, &mut reta_size) };
        check(format_args!("{device}: reading its RSS configuration"), r)?;
        let rss = (reta_size > 0).then_some(RssModel {
            reta_size,
            types: RssTypes::from_dpdk_rss_hf(rss_hf),
        });
        let deadline = Instant::now() + cfg.link_wait;
        let link_up = || {
            // SAFETY: the port is started; link_get_nowait only reads its state.
            unsafe { sw_port_link_up(port_id) > 0 }
        };
        while !link_up() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let seen = device_stats(port_id)?;
        Ok(DpdkPort {
            name: name.to_string(),
            device: device.to_string(),
            dev,
            port_id,
            first: 0,
            count: queues,
            nq: queues,
            counters: PortCounters::new(name, queues),
            scratch: Scratch::new(),
            polls: 0,
            registered: false,
            seen,
            rss,
        })
    }

    /// One handle per queue, for one worker each (queue 0's handle refreshes the device
    /// counters).
    pub fn split_queues(self) -> Vec<DpdkPort> {
        (self.first..self.first + self.count)
            .map(|q| DpdkPort {
                name: self.name.clone(),
                device: self.device.clone(),
                dev: self.dev.clone(),
                port_id: self.port_id,
                first: q,
                count: 1,
                nq: self.nq,
                counters: self.counters.clone(),
                scratch: Scratch::new(),
                polls: 0,
                registered: false,
                seen: self.seen,
                rss: self.rss,
            })
            .collect()
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The DPDK device name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Whether the link is up now.
    pub fn link_up(&self) -> bool {
        // SAFETY: the port is started while `self` holds the device.
        unsafe { sw_port_link_up(self.port_id) > 0 }
    }

    /// The device's own counters now.
    pub fn device_stats(&self) -> Result<DeviceStats, DpdkError> {
        device_stats(self.port_id)
    }

    /// Adds the device-only counters (imissed, ierrors, oerrors, rx_nombuf) that grew
    /// since the last refresh to queue 0's counters. Does nothing on other queues' handles.
    pub fn refresh_device_stats(&mut self) {
        if self.first != 0 {
            return;
        }
        let Ok(s) = device_stats(self.port_id) else {
            return;
        };
        let c = self.counters.queue(0);
        c.add_rx_missed(s.imissed.saturating_sub(self.seen.imissed));
        c.add_rx_errors(s.ierrors.saturating_sub(self.seen.ierrors));
        c.add_tx_errors(s.oerrors.saturating_sub(self.seen.oerrors));
        c.add_rx_nombuf(s.rx_nombuf.saturating_sub(self.seen.rx_nombuf));
        self.seen = s;
    }

    #[inline]
    fn serves(&self, queue: u16) -> bool {
        queue >= self.first && queue - self.first < self.count
    }
}

impl Port for DpdkPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        _pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        if !self.serves(queue) {
            return 0;
        }
        if !self.registered {
            // Give this (worker) thread an lcore id so the mempool's per-lcore cache
            // serves it; failure only means slower mempool access.
            // SAFETY: no preconditions beyond an initialised EAL (we have a device).
            unsafe { sw_thread_register() };
            self.registered = true;
        }
        self.polls = self.polls.wrapping_add(1);
        if self.polls & (STATS_POLL_BURSTS - 1) == 0 {
            self.refresh_device_stats();
        }
        let n = max.min(MAX_BURST) as u16;
        let s = &mut self.scratch;
        // SAFETY: the five arrays have MAX_BURST >= n slots; the port and queue are
        // started and this handle is the queue's only user.
        let got = unsafe {
            sw_rx_burst(
                self.port_id,
                queue,
                s.pkts.as_mut_ptr(),
                s.data.as_mut_ptr(),
                s.len.as_mut_ptr(),
                s.room.as_mut_ptr(),
                s.csum_ok.as_mut_ptr(),
                n,
            )
        } as usize;
        let mut bytes = 0u64;
        for i in 0..got {
            let (Some(m), Some(data)) = (NonNull::new(s.pkts[i]), NonNull::new(s.data[i])) else {
                continue;
            };
            let len = s.len[i].min(s.room[i]);
            let mut mb = Mbuf::from_rte(
                RteMbuf {
                    m,
                    data,
                    room: s.room[i],
                },
                len,
            );
            mb.port = self.port_id;
            mb.queue = queue;
            mb.l4_csum_ok = s.csum_ok[i] != 0;
            bytes += u64::from(len);
            out.push(mb);
        }
        self.counters.queue(queue).add_rx(got as u64, bytes);
        got
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        if !self.serves(queue) || pkts.is_empty() {
            return 0;
        }
        let mempool = self.dev.pools[usize::from(queue)].as_ptr();
        let s = &mut self.scratch;
        let mut n = pkts.len().min(MAX_BURST);
        for (i, m) in pkts.iter().take(n).enumerate() {
            if let Some(r) = m.rte() {
                s.pkts[i] = r.as_raw();
                s.fresh[i] = false;
            } else {
                let d = m.data();
                // SAFETY: `d` is a live slice; the shim copies `d.len()` bytes from it into
                // a new mbuf of the queue's mempool (NULL when empty or too long).
                let c = unsafe { sw_mbuf_from(mempool, d.as_ptr(), d.len() as u32) };
                if c.is_null() {
                    n = i;
                    break;
                }
                s.pkts[i] = c;
                s.fresh[i] = true;
            }
        }
        // SAFETY: s.pkts[..n] are valid mbufs we own (received ones are still owned by
        // their Mbuf, which gives them up below once sent); the queue is this handle's.
        let sent =
            unsafe { sw_tx_burst(self.port_id, queue, s.pkts.as_mut_ptr(), n as u16) } as usize;
        for i in sent..n {
            if s.fresh[i] {
                // SAFETY: a copy made above and not taken by the driver: still ours.
                unsafe { sw_mbuf_free(s.pkts[i]) };
            }
        }
        let mut bytes = 0u64;
        for m in pkts.drain(..sent) {
            bytes += m.len() as u64;
            if m.rte().is_some() {
                // The driver owns the mbuf now: do not free it.
                if let Some(r) = m.take_rte() {
                    let _ = r.into_raw();
                }
            } else {
                pool.put(m);
            }
        }
        self.counters.queue(queue).add_tx(sent as u64, bytes);
        sent
    }

    fn stats(&self) -> PortStats {
        self.counters.sum(self.queue_range())
    }

    fn queues(&self) -> u16 {
        self.nq
    }

    fn queue_range(&self) -> Range<u16> {
        self.first..self.first + self.count
    }

    fn counters(&self) -> Arc<PortCounters> {
        self.counters.clone()
    }

    /// The symmetric RSS statewall configured, when the device does RSS.
    fn steering(&self) -> Option<Steering> {
        self.rss.map(Steering::Rss)
    }

    /// Not trusted: a driver may hash other fields than the model (or ignore the key
    /// after reporting it), so workers check every packet; with a device that does as
    /// configured, nothing is handed over but ICMP errors and fragment trains.
    fn steering_trusted(&self) -> bool {
        false
    }
}

/// DPDK's own software Toeplitz hash (`rte_softrss`) of `tuple` (32-bit words in host
/// order, as `rte_thash.h` takes them) under `key` (40 bytes), for cross-checks.
pub fn softrss(tuple: &[u32], key: &[u8; 40]) -> u32 {
    let mut t = tuple.to_vec();
    assert!(t.len() <= 9, "at most 9 words");
    // SAFETY: `t` holds `t.len()` words and `key` 40 bytes, all rte_softrss reads for
    // inputs of up to 36 bytes (9 words), checked above.
    unsafe { sw_softrss(t.as_mut_ptr(), t.len() as u32, key.as_ptr()) }
}

#[cfg(test)]
mod tests;
