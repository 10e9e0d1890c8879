//! systemd readiness notification (`Type=notify`): READY=1 once ports are up and the
//! rules are loaded, RELOADING=1 / READY=1 around reloads, STOPPING=1 at shutdown.
//! A no-op when `NOTIFY_SOCKET` is not set.

use std::os::unix::net::UnixDatagram;

fn send(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let p = path.to_string_lossy();
    if let Some(abstract_name) = p.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        {
            let _ = sock.send_to_addr(msg.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(msg.as_bytes(), &*p);
    }
}

/// Tells systemd the service is ready.
pub fn ready() {
    send("READY=1");
}

/// Tells systemd a reload started (RELOADING=1 with the monotonic timestamp).
pub fn reloading() {
    let ts = libc_timespec().max(1);
    send(&format!("RELOADING=1\nMONOTONIC_USEC={ts}"));
}

/// Sets the free-form status line `systemctl status` shows (STATUS=...).
pub fn status(text: &str) {
    // One line: systemd reads newline-separated assignments.
    let line: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    send(&format!("STATUS={line}"));
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send("STOPPING=1");
}

fn libc_timespec() -> u64 {
    // CLOCK_MONOTONIC in microseconds, as systemd expects for MONOTONIC_USEC.
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `t`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    if rc != 0 {
        return 0;
    }
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}

#[cfg(test)]
mod tests {
    #[test]
    fn notify_reaches_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        super::ready();
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
