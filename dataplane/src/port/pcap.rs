//! Capture files as a port: rx reads a pcap file, tx appends to one.
//!
//! The classic libpcap format is written by hand (24-byte file header, 16-byte record
//! headers): both byte orders and both microsecond (`0xa1b2c3d4`) and nanosecond
//! (`0xa1b23c4d`) magics are read; files are written with the nanosecond magic in host
//! order so receive timestamps survive a round trip exactly. Only the Ethernet link type
//! (1) is accepted; anything else is refused when the file is opened.
//!
//! The file is read and written through 64 KiB buffers: a system call per buffer, not
//! per packet. One queue only. pcapng is not supported (refused with a clear error).

use super::{Mbuf, MbufPool, Nanos, Port, PortCounters, PortStats};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
/// Ethernet link type.
pub const LINKTYPE_ETHERNET: u32 = 1;
const IO_BUF: usize = 64 * 1024;
/// Largest record accepted when reading (a corrupt length beyond this ends the file).
const MAX_RECORD: u32 = 256 * 1024;

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// An error opening or creating `path`, of the same kind, naming the file.
fn in_file(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("pcap {}: {e}", path.display()))
}

/// Reads records of a pcap file.
struct Reader {
    r: BufReader<File>,
    swap: bool,
    nanos: bool,
    eof: bool,
    scratch: [u8; 512],
}

impl Reader {
    fn open(path: &Path) -> io::Result<Self> {
        let f = File::open(path).map_err(|e| in_file(path, e))?;
        let mut r = BufReader::with_capacity(IO_BUF, f);
        let mut h = [0u8; 24];
        r.read_exact(&mut h).map_err(|e| {
            bad(format!(
                "pcap {}: cannot read the file header: {e}",
                path.display()
            ))
        })?;
        let m = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swap, nanos) = match m {
            MAGIC_US => (false, false),
            MAGIC_NS => (false, true),
            x if x.swap_bytes() == MAGIC_US => (true, false),
            x if x.swap_bytes() == MAGIC_NS => (true, true),
            PCAPNG_MAGIC => {
                return Err(bad(format!(
                    "pcap {}: pcapng is not supported; convert with `editcap -F pcap`",
                    path.display()
                )))
            }
            x => {
                return Err(bad(format!(
                    "pcap {}: not a pcap file (magic {x:#010x})",
                    path.display()
                )))
            }
        };
        let rd = |b: &[u8]| {
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if swap {
                v.swap_bytes()
            } else {
                v
            }
        };
        let linktype = rd(&h[20..24]) & 0x0fff_ffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(bad(format!(
                "pcap {}: link type {linktype} is not supported; only Ethernet (1)",
                path.display()
            )));
        }
        Ok(Reader {
            r,
            swap,
            nanos,
            eof: false,
            scratch: [0; 512],
        })
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swap {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// Reads the next record into `m`. Ok(false) at the end; Err on a truncated or
    /// corrupt record (the reader then stops). A frame longer than the buffer is
    /// truncated and reported as `Ok(true)` with `truncated` set.
    fn next(&mut self, m: &mut Mbuf, truncated: &mut bool) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut h = [0u8; 16];
        // Distinguish a clean end (0 bytes) from a cut header.
        let mut got = 0;
        while got < 16 {
            match self.r.read(&mut h[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.eof = true;
                    return Err(e);
                }
            }
        }
        if got == 0 {
            self.eof = true;
            return Ok(false);
        }
        if got < 16 {
            self.eof = true;
            return Err(bad("pcap: truncated record header".into()));
        }
        let sec = u64::from(self.u32_at(&h[0..4]));
        let frac = u64::from(self.u32_at(&h[4..8]));
        let incl = self.u32_at(&h[8..12]);
        if incl > MAX_RECORD {
            self.eof = true;
            return Err(bad(format!("pcap: record length {incl} is corrupt")));
        }
        let incl = incl as usize;
        let take = incl.min(m.capacity());
        if let Err(e) = self.r.read_exact(&mut m.data_mut_full()[..take]) {
            self.eof = true;
            return Err(e);
        }
        let mut rest = incl - take;
        *truncated = rest > 0;
        while rest > 0 {
            let n = rest.min(self.scratch.len());
            if let Err(e) = self.r.read_exact(&mut self.scratch[..n]) {
                self.eof = true;
                return Err(e);
            }
            rest -= n;
        }
        m.set_len(take);
        m.timestamp = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(true)
    }
}

/// Writes records of a pcap file (nanosecond magic, host byte order).
struct Writer {
    w: BufWriter<File>,
}

impl Writer {
    fn create(path: &Path) -> io::Result<Self> {
        let f = File::create(path).map_err(|e| in_file(path, e))?;
        let mut w = BufWriter::with_capacity(IO_BUF, f);
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NS.to_ne_bytes());
        h[4..6].copy_from_slice(&2u16.to_ne_bytes());
        h[6..8].copy_from_slice(&4u16.to_ne_bytes());
        h[16..20].copy_from_slice(&65535u32.to_ne_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        w.write_all(&h)?;
        Ok(Writer { w })
    }

    fn write(&mut self, frame: &[u8], ts: Nanos) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts / 1_000_000_000) as u32).to_ne_bytes());
        h[4..8].copy_from_slice(&((ts % 1_000_000_000) as u32).to_ne_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(frame)
    }
}

/// A pcap port: rx from a capture file, tx into another (either may be absent).
///
/// Without a reader, rx returns nothing; without a writer, tx discards every frame and
/// counts it in `tx_errors`. Frames transmitted with a zero timestamp are stamped with
/// the wall clock at the burst.
pub struct PcapPort {
    name: String,
    port_id: u16,
    reader: Option<Reader>,
    writer: Option<Writer>,
    counters: Arc<PortCounters>,
    last_error: Option<io::Error>,
}

impl PcapPort {
    /// A port that reads `rx` (if given) and writes `tx` (if given, created or truncated).
    pub fn open(rx: Option<&Path>, tx: Option<&Path>) -> io::Result<Self> {
        let reader = rx.map(Reader::open).transpose()?;
        let writer = tx.map(Writer::create).transpose()?;
        let name = match (rx, tx) {
            (Some(r), Some(t)) => format!("pcap:{}>{}", r.display(), t.display()),
            (Some(r), None) => format!("pcap:{}", r.display()),
            (None, Some(t)) => format!("pcap:>{}", t.display()),
            (None, None) => "pcap:none".to_string(),
        };
        Ok(PcapPort {
            counters: PortCounters::new(&name, 1),
            name,
            port_id: 0,
            reader,
            writer,
            last_error: None,
        })
    }

    /// A read-only port over a capture.
    pub fn reader(path: &Path) -> io::Result<Self> {
        Self::open(Some(path), None)
    }

    /// A write-only port into a new capture.
    pub fn writer(path: &Path) -> io::Result<Self> {
        Self::open(None, Some(path))
    }

    /// Sets the port id written into received buffers.
    pub fn set_port_id(&mut self, id: u16) {
        self.port_id = id;
    }

    /// True once the capture has been read to its end (or to an error).
    pub fn rx_done(&self) -> bool {
        self.reader.as_ref().is_none_or(|r| r.eof)
    }

    /// The last I/O error met (reading stops at a corrupt record; writing stops at an
    /// error), taken.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.last_error.take()
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PcapPort {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        let Some(r) = self.reader.as_mut().filter(|_| queue == 0) else {
            return 0;
        };
        let c = self.counters.queue(0);
        let (mut n, mut bytes, mut errors) = (0, 0u64, 0);
        while n < max && !r.eof {
            let Some(mut m) = pool.get() else {
                // The file keeps the frame: nothing is lost, it is read next time.
                c.add_rx_nombuf(1);
                break;
            };
            let mut truncated = false;
            match r.next(&mut m, &mut truncated) {
                Ok(true) => {
                    errors += u64::from(truncated);
                    m.port = self.port_id;
                    m.queue = 0;
                    m.hash = crate::steer::frame_hash(m.data());
                    bytes += m.len() as u64;
                    out.push(m);
                    n += 1;
                }
                Ok(false) => {
                    pool.put(m);
                }
                Err(e) => {
                    pool.put(m);
                    errors += 1;
                    self.last_error = Some(e);
                }
            }
        }
        c.add_rx(n as u64, bytes);
        c.add_rx_errors(errors);
        n
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        if queue != 0 {
            return 0;
        }
        let c = self.counters.queue(0);
        let n = pkts.len();
        let now = if pkts.iter().any(|m| m.timestamp == 0) {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        } else {
            0
        };
        let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        for m in pkts.drain(..) {
            match &mut self.writer {
                Some(w) if self.last_error.is_none() => {
                    let ts = if m.timestamp == 0 { now } else { m.timestamp };
                    match w.write(m.data(), ts) {
                        Ok(()) => {
                            sent += 1;
                            bytes += m.len() as u64;
                        }
                        Err(e) => {
                            errors += 1;
                            self.last_error = Some(e);
                        }
                    }
                }
                _ => errors += 1,
            }
            pool.put(m);
        }
        c.add_tx(sent, bytes);
        c.add_tx_errors(errors);
        n
    }

    fn stats(&self) -> PortStats {
        self.counters.total()
    }

    fn queues(&self) -> u16 {
        1
    }

    fn counters(&self) -> Arc<PortCounters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("statewall-pcap-{}-{name}", std::process::id()))
    }

    #[test]
    fn port_pcap_write_then_read_preserves_frames_and_timestamps() {
        let path = tmp("rt.pcap");
        let mut pool = MbufPool::new(64);
        let mut frames = Vec::new();
        {
            let mut w = PcapPort::writer(&path).unwrap();
            let mut pkts = Vec::with_capacity(32);
            for i in 0..10u16 {
                let spec = PacketSpec::udp(
                    format!("10.0.0.{}:{}", i + 1, 1000 + i).parse().unwrap(),
                    "192.168.0.1:53".parse().unwrap(),
                )
                .payload(&[7u8; 30]);
                let mut m = pool.get().unwrap();
                let n = spec.write(m.data_mut_full()).unwrap();
                m.set_len(n);
                m.timestamp = 1_700_000_000_123_456_789 + u64::from(i) * 1_000_001;
                frames.push((m.data().to_vec(), m.timestamp));
                pkts.push(m);
            }
            assert_eq!(w.tx_burst(0, &mut pkts, &mut pool), 10);
            assert!(pkts.is_empty());
            assert_eq!(w.stats().tx_packets, 10);
        }
        assert_eq!(pool.outstanding(), 0);
        let mut r = PcapPort::reader(&path).unwrap();
        let mut out = Vec::with_capacity(32);
        let mut got = 0;
        while !r.rx_done() {
            got += r.rx_burst(0, &mut pool, &mut out, 4);
        }
        assert_eq!(got, 10);
        for (m, (f, ts)) in out.iter().zip(&frames) {
            assert_eq!(m.data(), &f[..]);
            assert_eq!(m.timestamp, *ts);
            assert_ne!(m.hash, 0);
        }
        let s = r.stats();
        assert_eq!((s.rx_packets, s.rx_errors), (10, 0));
        pool.put_all(&mut out);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn port_pcap_reads_microsecond_big_endian_and_refuses_other_linktypes() {
        let path = tmp("be.pcap");
        let frame =
            PacketSpec::udp("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap()).to_vec();
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_US.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        f.extend_from_slice(&frame);
        // A cut second record.
        f.extend_from_slice(&[0, 0, 0]);
        std::fs::write(&path, &f).unwrap();
        let mut pool = MbufPool::new(4);
        let mut r = PcapPort::reader(&path).unwrap();
        let mut out = Vec::with_capacity(4);
        assert_eq!(r.rx_burst(0, &mut pool, &mut out, 4), 1);
        assert_eq!(out[0].timestamp, 5_000_007_000);
        assert_eq!(out[0].data(), &frame[..]);
        assert!(r.rx_done());
        assert_eq!(r.stats().rx_errors, 1);
        assert!(r.take_error().is_some());
        pool.put_all(&mut out);

        // Linux cooked capture (113) is refused.
        f[20..24].copy_from_slice(&113u32.to_be_bytes());
        std::fs::write(&path, &f).unwrap();
        let e = PcapPort::reader(&path).err().unwrap();
        assert!(e.to_string().contains("link type 113"), "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
