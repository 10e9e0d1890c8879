//! Packet buffers and their per-worker pool.
//!
//! An [`Mbuf`] owns a fixed-capacity byte buffer (2048 B by default) plus metadata:
//! length, port id, queue, receive timestamp and steering hash. An [`MbufPool`] is a
//! LIFO free list of such buffers, all allocated when the pool is made; `get` pops and
//! `put` pushes, so neither allocates (the free list's capacity is reserved up front).
//! LIFO keeps recently used, cache-warm buffers in circulation.
//!
//! Pools are per worker and never shared: the worker passes `&mut MbufPool` into every
//! burst call, so there is no lock or atomic on the hot path. A buffer that is dropped
//! instead of `put` back is simply freed (the pool shrinks by one); [`MbufPool::outstanding`]
//! lets tests check that nothing leaks.
//!
//! With the `dpdk` feature an `Mbuf` can instead wrap a DPDK `rte_mbuf` received by the
//! [`super::dpdk`] backend (zero-copy): `data()` is the mbuf's own data, dropping it or
//! [`MbufPool::put`] frees it to its DPDK mempool, and the DPDK `tx_burst` hands it to the
//! driver without a copy. Every other backend only ever sees pool buffers; without the
//! feature the type is exactly the plain buffer.

use super::Nanos;

/// Default buffer capacity in bytes (room for a 1518-byte frame plus VLAN tags).
pub const DEFAULT_MBUF_SIZE: usize = 2048;

/// A packet buffer taken from an [`MbufPool`].
#[derive(Debug)]
pub struct Mbuf {
    buf: Box<[u8]>,
    len: u32,
    /// The port id that received the frame (set by the backend from its configuration).
    pub port: u16,
    /// The queue that received the frame.
    pub queue: u16,
    /// Receive timestamp in nanoseconds (capture time for pcap, the burst's clock read
    /// for live ports).
    pub timestamp: Nanos,
    /// Steering hash (the [`crate::steer::symmetric_hash`] of the tuple where the backend knows
    /// it; 0 otherwise).
    pub hash: u32,
    /// The device verified the frame's L4 checksum (a NIC's receive checksum offload,
    /// reported by af_packet as `TP_STATUS_CSUM_VALID` and by DPDK as
    /// `RTE_MBUF_F_RX_L4_CKSUM_GOOD`; Linux's `CHECKSUM_UNNECESSARY`): conntrack then
    /// skips its own check, as Linux's does. False when unknown.
    pub l4_csum_ok: bool,
    /// A DPDK mbuf that holds the frame instead of `buf` (then `buf` is empty).
    #[cfg(feature = "dpdk")]
    rte: Option<super::dpdk::RteMbuf>,
}

impl Mbuf {
    /// Wraps a received DPDK mbuf (zero-copy).
    #[cfg(feature = "dpdk")]
    #[inline]
    pub(crate) fn from_rte(m: super::dpdk::RteMbuf, len: u32) -> Mbuf {
        Mbuf {
            buf: Box::default(),
            len,
            port: 0,
            queue: 0,
            timestamp: 0,
            hash: 0,
            l4_csum_ok: false,
            rte: Some(m),
        }
    }

    /// The DPDK mbuf behind this buffer, if any.
    #[cfg(feature = "dpdk")]
    #[inline]
    pub(crate) fn rte(&self) -> Option<&super::dpdk::RteMbuf> {
        self.rte.as_ref()
    }

    /// Takes the DPDK mbuf out (the driver now owns it); the rest is dropped.
    #[cfg(feature = "dpdk")]
    #[inline]
    pub(crate) fn take_rte(mut self) -> Option<super::dpdk::RteMbuf> {
        self.rte.take()
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        #[cfg(feature = "dpdk")]
        if let Some(m) = &self.rte {
            return &m.room()[..self.len as usize];
        }
        &self.buf[..self.len as usize]
    }

    /// The frame bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let n = self.len as usize;
        &mut self.data_mut_full()[..n]
    }

    /// The whole buffer (capacity bytes), for writing a frame before [`Mbuf::set_len`].
    #[inline]
    pub fn data_mut_full(&mut self) -> &mut [u8] {
        #[cfg(feature = "dpdk")]
        if let Some(m) = &mut self.rte {
            return m.room_mut();
        }
        &mut self.buf
    }

    /// Frame length.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Buffer capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        #[cfg(feature = "dpdk")]
        if let Some(m) = &self.rte {
            return m.room().len();
        }
        self.buf.len()
    }

    /// Sets the frame length; clamped to the capacity.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity()) as u32;
        #[cfg(feature = "dpdk")]
        if let Some(m) = &mut self.rte {
            m.set_len(self.len);
        }
    }

    /// Copies `frame` in (truncated to the capacity) and sets the length.
    #[inline]
    pub fn copy_from(&mut self, frame: &[u8]) {
        let n = frame.len().min(self.capacity());
        self.data_mut_full()[..n].copy_from_slice(&frame[..n]);
        self.set_len(n);
    }
}

/// A preallocated pool of [`Mbuf`] buffers, owned by one worker.
#[derive(Debug)]
pub struct MbufPool {
    free: Vec<Box<[u8]>>,
    size: usize,
    total: usize,
}

impl MbufPool {
    /// A pool of `n` buffers of [`DEFAULT_MBUF_SIZE`] bytes.
    pub fn new(n: usize) -> Self {
        Self::with_size(n, DEFAULT_MBUF_SIZE)
    }

    /// A pool of `n` buffers of `size` bytes each, all allocated now.
    pub fn with_size(n: usize, size: usize) -> Self {
        let mut free = Vec::with_capacity(n);
        for _ in 0..n {
            free.push(vec![0u8; size].into_boxed_slice());
        }
        MbufPool {
            free,
            size,
            total: n,
        }
    }

    /// Takes a buffer (length 0, metadata zero), or None when the pool is empty.
    #[inline]
    pub fn get(&mut self) -> Option<Mbuf> {
        self.free.pop().map(|buf| Mbuf {
            buf,
            len: 0,
            port: 0,
            queue: 0,
            timestamp: 0,
            hash: 0,
            l4_csum_ok: false,
            #[cfg(feature = "dpdk")]
            rte: None,
        })
    }

    /// Returns a buffer. A buffer of another size, or one beyond the pool's size, is freed;
    /// a DPDK mbuf goes back to its own mempool.
    #[inline]
    pub fn put(&mut self, m: Mbuf) {
        #[cfg(feature = "dpdk")]
        if m.rte.is_some() {
            drop(m);
            return;
        }
        if m.buf.len() == self.size && self.free.len() < self.total {
            self.free.push(m.buf);
        }
    }

    /// Returns every buffer of `pkts` (which is left empty).
    #[inline]
    pub fn put_all(&mut self, pkts: &mut Vec<Mbuf>) {
        for m in pkts.drain(..) {
            self.put(m);
        }
    }

    /// Buffers available now.
    #[inline]
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers handed out and not returned.
    pub fn outstanding(&self) -> usize {
        self.total - self.free.len()
    }

    /// Capacity of each buffer.
    pub fn buf_size(&self) -> usize {
        self.size
    }

    /// Number of buffers the pool was made with.
    pub fn count(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mbuf_pool_get_put() {
        let mut p = MbufPool::with_size(2, 128);
        let mut a = p.get().unwrap();
        let b = p.get().unwrap();
        assert!(p.get().is_none());
        assert_eq!(p.outstanding(), 2);
        a.copy_from(&[1, 2, 3]);
        assert_eq!(a.data(), &[1, 2, 3]);
        a.set_len(1000);
        assert_eq!(a.len(), 128);
        p.put(a);
        p.put(b);
        assert_eq!(p.available(), 2);
        // A foreign buffer is not adopted.
        let mut q = MbufPool::with_size(1, 64);
        let c = q.get().unwrap();
        p.put(c);
        assert_eq!(p.available(), 2);
    }
}
