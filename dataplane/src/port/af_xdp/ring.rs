//! One mmapped AF_XDP ring (RX, TX, FILL or COMPLETION): the shared producer and consumer
//! indexes with the cached copies this side keeps, and the descriptor slots.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mmapped ring: producer and consumer indexes, flags and descriptors in shared memory,
/// plus the cached copies of the indexes that only this side writes or has last seen.
pub(super) struct Ring {
    pub(super) map: *mut u8,
    pub(super) map_len: usize,
    pub(super) producer: *const AtomicU32,
    pub(super) consumer: *const AtomicU32,
    pub(super) flags: *const AtomicU32,
    pub(super) desc: *mut u8,
    pub(super) mask: u32,
    pub(super) size: u32,
    pub(super) cached_prod: u32,
    pub(super) cached_cons: u32,
}

impl Ring {
    /// Maps the ring of `entries` entries of `entry` bytes at page offset `pgoff`.
    pub(super) fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry: usize,
        pgoff: libc::off_t,
    ) -> io::Result<Ring> {
        let map_len = off.desc as usize + entries as usize * entry;
        // The ring the kernel allocated for this socket at its documented page offset, no
        // longer than the kernel's offsets and entry count say.
        let map = crate::port::sys::mmap_ring(fd, map_len, pgoff)?;
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

    pub(super) fn prod(&self) -> &AtomicU32 {
        // SAFETY: `producer` points at the 4-byte aligned index inside the mapping, which
        // lives as long as `self`; the kernel and we only access it atomically.
        unsafe { &*self.producer }
    }

    pub(super) fn cons(&self) -> &AtomicU32 {
        // SAFETY: as for `prod`.
        unsafe { &*self.consumer }
    }

    pub(super) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `prod` (the flags word of the ring).
        let f = unsafe { &*self.flags };
        f.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: free entries (at least `want` if available without re-reading).
    pub(super) fn prod_free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.cons().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Producer side: publishes `n` entries written after `cached_prod`.
    pub(super) fn submit(&mut self, n: u32) {
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n);
            self.prod().store(self.cached_prod, Ordering::Release);
        }
    }

    /// Consumer side: entries ready to read, at most `max`.
    pub(super) fn cons_avail(&mut self, max: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail == 0 {
            self.cached_prod = self.prod().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(max)
    }

    /// Consumer side: gives `n` read entries back.
    pub(super) fn release(&mut self, n: u32) {
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n);
            self.cons().store(self.cached_cons, Ordering::Release);
        }
    }

    /// The `i`-th entry from `base` as a `u64` address (FILL and COMPLETION rings).
    pub(super) fn addr(&self, base: u32, i: u32) -> *mut u64 {
        let slot = (base.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `slot < size`, and the mapping holds `size` entries of 8 bytes after
        // `desc` (8-byte aligned: the kernel places desc at an aligned offset).
        unsafe { self.desc.add(slot * 8).cast() }
    }

    /// The `i`-th entry from `base` as an `xdp_desc` (RX and TX rings).
    pub(super) fn xdesc(&self, base: u32, i: u32) -> *mut libc::xdp_desc {
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
