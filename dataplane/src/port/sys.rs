//! System-call helpers shared by the kernel-socket backends ([`super::af_packet`] and
//! [`super::af_xdp`]): `setsockopt` and `getsockopt` on typed values, mapping a socket's ring, taking ownership of a fresh
//! descriptor, and the one error format both use, `"{backend} {ifname}: {what}: {e}"`
//! with the kind of the original error kept (callers match on `raw_os_error`).

// `unsafe` is denied crate-wide (lib.rs); this backend needs it for system calls on raw descriptors.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `e`, prefixed with the backend, the interface and the step that failed; its kind is
/// kept.
pub(super) fn err(backend: &str, what: &str, ifname: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{backend} {ifname}: {what}: {e}"))
}

/// [`err`] of `errno` (`io::Error::last_os_error`): call it right after the failed call.
pub(super) fn last_err(backend: &str, what: &str, ifname: &str) -> io::Error {
    err(backend, what, ifname, io::Error::last_os_error())
}

/// `setsockopt(fd, level, name, val, sizeof *val)`; the OS error on failure.
pub(super) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T and we pass its exact size; the kernel
    // only reads that many bytes during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
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

/// `getsockopt(fd, level, name)` into a zeroed `T`: the value and the length the kernel
/// wrote; the OS error on failure.
///
/// # Safety
///
/// `T` must be plain data (a C struct of integers, or an integer): every bit pattern,
/// all-zero included, is a valid `T`.
pub(super) unsafe fn getsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    // SAFETY: all-zero is a valid T (the caller's contract).
    let mut val: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` and `len` are live and describe a buffer of `len` bytes; the kernel
    // writes at most that many, and any bytes it writes make a valid T (the contract).
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((val, len as usize))
    }
}

/// Maps `len` bytes of a ring the kernel allocated for socket `fd`, at page offset
/// `pgoff`: shared, read-write, populated. The mapping's start; the OS error on
/// failure. The caller unmaps it (munmap) when done.
pub(super) fn mmap_ring(fd: &OwnedFd, len: usize, pgoff: libc::off_t) -> io::Result<*mut u8> {
    // SAFETY: a new mapping at an address the kernel picks (null hint) changes no memory
    // this program already uses; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Takes ownership of `fd`, so that it is closed when the [`OwnedFd`] drops.
///
/// # Safety
///
/// `fd` must be an open descriptor that nothing else owns or will close: one the caller
/// has just received from a successful system call (socket(2), bpf(2)) and handed to
/// nothing else. Two owners would close it twice, the second time perhaps closing an
/// unrelated descriptor that reused the number.
pub(super) unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `fd` is open and unowned (the contract above).
    unsafe { OwnedFd::from_raw_fd(fd) }
}
