//! The CPU intrinsics the fast path uses, in one place: a cache-line prefetch (the
//! connection table's staged lookup) and the cycle counter (the worker's busy and total
//! time). Each has a portable fallback, so the rest of the crate needs no `unsafe` and
//! no `cfg(target_arch)` for them.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line of `x` in (no effect on the program's state).
#[inline(always)]
pub(crate) fn prefetch_line<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let ptr = x as *const T as *const i8;
        // SAFETY: `ptr` comes from a reference, so it points into a live allocation; a
        // prefetch never faults and has no architectural effect, and SSE is baseline
        // on x86_64.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = x;
    }
}

/// The CPU's cycle counter (the TSC on x86_64); `None` where there is none to read
/// without a system call, and the caller falls back to its clock.
#[inline(always)]
pub(crate) fn cycle_counter() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions; it only reads the time-stamp counter.
        Some(unsafe { core::arch::x86_64::_rdtsc() })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
