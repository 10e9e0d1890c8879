//! The steering program of an AF_XDP port, hand-assembled ([`redirect_program`]), and
//! [`XdpProgram`]: its XSKMAP, the loaded program and the BPF link attaching it, made with
//! raw bpf(2) calls (`union bpf_attr` written byte by byte at the UAPI offsets).

use super::{err, XdpMode};
use crate::port::sys::owned;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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
pub(super) struct XdpProgram {
    pub(super) map: OwnedFd,
    pub(super) _prog: OwnedFd,
    pub(super) link: Option<OwnedFd>,
    pub(super) native: bool,
}

impl XdpProgram {
    pub(super) fn load(ifname: &str, entries: u32) -> io::Result<Self> {
        let mut a = [0u8; BPF_ATTR_SIZE];
        put_u32(&mut a, 0, BPF_MAP_TYPE_XSKMAP); // map_type
        put_u32(&mut a, 4, 4); // key_size
        put_u32(&mut a, 8, 4); // value_size
        put_u32(&mut a, 12, entries.max(1)); // max_entries
        let map_fd = bpf(BPF_MAP_CREATE, &mut a).map_err(|e| {
            err(
                "bpf(BPF_MAP_CREATE XSKMAP) (needs CAP_BPF/CAP_SYS_ADMIN)",
                ifname,
                e,
            )
        })?;
        // SAFETY: a successful bpf(2) just returned `map_fd`, and nothing else holds it.
        let map = unsafe { owned(map_fd) };
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
                // SAFETY: a successful bpf(2) just returned `fd`, and nothing else holds it.
                Ok(fd) => break unsafe { owned(fd) },
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
    pub(super) fn attach(&mut self, ifname: &str, ifindex: u32, mode: XdpMode) -> io::Result<()> {
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
                    // SAFETY: a successful bpf(2) just returned `fd`; nothing else holds it.
                    self.link = Some(unsafe { owned(fd) });
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
    pub(super) fn insert(&self, ifname: &str, queue: u32, fd: RawFd) -> io::Result<()> {
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
