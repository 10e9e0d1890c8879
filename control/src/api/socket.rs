//! The control API's unix socket: created mode 0660 (group `control.socket_group`) in a
//! directory created 0750 when missing. A socket left by a killed statewall is removed
//! when nothing answers on it; a live statewall answering there stops the start.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A bound control socket's file; removed on drop if it is still ours.
#[derive(Debug)]
pub struct SocketFile {
    /// Its path.
    pub path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Only our own file: a later statewall may have replaced it.
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Resolves a group name or number.
pub fn group_id(group: &str) -> Result<u32> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    let name = std::ffi::CString::new(group)
        .map_err(|_| anyhow::anyhow!("control.socket_group: bad name {group:?}"))?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: zeroed `group` is a valid out-parameter (pointers null, ints 0).
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it; `out` is written by
    // getgrnam_r and points into `grp` or is null.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        bail!("control.socket_group: no group named {group:?}");
    }
    Ok(grp.gr_gid)
}

fn chown_group(path: &Path, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| {
        format!(
            "control.socket_group: chown {} to gid {gid}",
            path.display()
        )
    })
}

/// Binds the socket at `path`. `explicit`: asked for in the configuration; when not,
/// a directory that cannot be created (no permission) turns the socket off with a
/// warning instead of failing (an unprivileged `statewall run` demo).
pub fn bind(
    path: &Path,
    explicit: bool,
    group: Option<&str>,
) -> Result<Option<(UnixListener, SocketFile)>> {
    let gid = group.map(group_id).transpose()?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        if !dir.exists() {
            match std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
            {
                Ok(()) => {
                    if let Some(g) = gid {
                        chown_group(dir, g)?;
                    }
                }
                Err(e) if !explicit && is_permission(&e) => {
                    tracing::warn!(
                        socket = %path.display(),
                        error = %e,
                        "control.socket: cannot create the socket's directory; the unix control socket is off (set control.socket to a writable path)"
                    );
                    return Ok(None);
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("control.socket: creating directory {}", dir.display())
                    })
                }
            }
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => bail!(
                "control.socket: another statewall answers on {} (stop it first, or set control.socket)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale control socket (nothing answers on it)");
                std::fs::remove_file(path).with_context(|| {
                    format!("control.socket: removing stale socket {}", path.display())
                })?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("control.socket: probing {}", path.display()))
            }
        },
        Ok(_) => bail!(
            "control.socket: {} exists and is not a socket",
            path.display()
        ),
        Err(_) => {}
    }
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if !explicit && is_permission(&e) => {
            tracing::warn!(socket = %path.display(), error = %e, "control.socket: cannot create the socket; the unix control socket is off");
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("control.socket: binding {}", path.display()))
        }
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("control.socket: chmod 0660 {}", path.display()))?;
    if let Some(g) = gid {
        chown_group(path, g)?;
    }
    let m = std::fs::symlink_metadata(path)
        .with_context(|| format!("control.socket: {}", path.display()))?;
    Ok(Some((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            id: (m.dev(), m.ino()),
        },
    )))
}

fn is_permission(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
        || matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EPERM))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_removed_live_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/control.sock");
        let s = super::bind(&p, true, None).unwrap().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o750);
        let e = super::bind(&p, true, None).unwrap_err().to_string();
        assert!(e.contains("another statewall answers"), "{e}");
        // A killed process leaves the file behind: nothing answers, it is replaced.
        let stale = std::os::unix::net::UnixListener::bind(d.path().join("x")).unwrap();
        drop(stale);
        let s2 = super::bind(&d.path().join("x"), true, None).unwrap();
        assert!(s2.is_some());
        drop(s);
        assert!(!p.exists(), "removed on drop");
        std::fs::write(&p, "not a socket").unwrap();
        let e = super::bind(&p, true, None).unwrap_err().to_string();
        assert!(e.contains("is not a socket"), "{e}");
    }
}
