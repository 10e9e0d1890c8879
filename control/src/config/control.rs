//! `[control]`: the control API's listeners (unix socket, TCP), its access control
//! (socket permissions, bearer token, TLS) and its limits (body size and timeouts).

use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The unix socket `statewall run` listens on when `control.socket` is not set.
pub const DEFAULT_SOCKET: &str = "/run/statewall/control.sock";

/// `[control]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// TCP address for `/metrics`, the read-only API and (with `token_file`) mutations
    /// ("" disables it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Unix socket for the whole API, read and write (`statewall ctl`'s default).
    /// Unset: [`DEFAULT_SOCKET`], skipped with a warning when its directory cannot be
    /// created (an unprivileged demo); "" disables it; a path: required.
    #[serde(default)]
    pub socket: Option<String>,
    /// Group (name or number) that owns the socket: its members may use `statewall ctl`
    /// (the socket is mode 0660). Unset: the process's group.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// File holding the bearer token that mutations over TCP must carry
    /// (`Authorization: Bearer TOKEN`); read at start and on reload. Unset: TCP is
    /// read-only. Required when `listen` is not a loopback address.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain for TLS on `listen` (cargo feature `tls`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted (a ruleset upload), in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Time allowed to receive a request body, in milliseconds (then 408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Time allowed to receive a request's headers, in milliseconds (then the connection
    /// is closed): slow or half-open clients cannot hold the server.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Most connections served at once (TCP and socket together); beyond it new
    /// connections are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds between terminal stats lines (0 = quiet).
    #[serde(default = "default_stats_interval")]
    pub stats_interval: u64,
}

fn default_listen() -> String {
    "127.0.0.1:9469".into()
}
fn default_stats_interval() -> u64 {
    1
}
fn default_max_body() -> u64 {
    64 << 20
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_header_timeout() -> u64 {
    5_000
}
fn default_max_connections() -> usize {
    4096
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_listen(),
            socket: None,
            socket_group: None,
            token_file: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: default_max_body(),
            body_timeout_ms: default_body_timeout(),
            header_timeout_ms: default_header_timeout(),
            max_connections: default_max_connections(),
            stats_interval: default_stats_interval(),
        }
    }
}

impl ControlConfig {
    /// The socket path to listen on (None: disabled) and whether it was asked for
    /// explicitly (a failure to create it is then fatal).
    pub fn socket_path(&self) -> Option<(PathBuf, bool)> {
        match self.socket.as_deref() {
            None => Some((PathBuf::from(DEFAULT_SOCKET), false)),
            Some("") => None,
            Some(p) => Some((PathBuf::from(p), true)),
        }
    }

    /// Resolves relative paths against the configuration file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.token_file, &mut self.tls_cert, &mut self.tls_key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(s) = &mut self.socket {
            if !s.is_empty() && Path::new(s.as_str()).is_relative() {
                *s = base.join(s.as_str()).display().to_string();
            }
        }
    }

    /// Semantic checks; each error names its field.
    pub fn validate(&self) -> Result<()> {
        if self.max_body_bytes == 0 {
            bail!("control.max_body_bytes: must be at least 1");
        }
        if self.body_timeout_ms == 0 {
            bail!("control.body_timeout_ms: must be at least 1");
        }
        if self.header_timeout_ms == 0 {
            bail!("control.header_timeout_ms: must be at least 1");
        }
        if self.max_connections == 0 {
            bail!("control.max_connections: must be at least 1");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("control.tls_key: required with control.tls_cert"),
            (None, Some(_)) => bail!("control.tls_cert: required with control.tls_key"),
            (Some(_), Some(_)) if !cfg!(feature = "tls") => bail!(
                "control.tls_cert: this statewall was built without TLS (cargo feature `tls`)"
            ),
            _ => {}
        }
        if let Ok(addr) = self.listen.parse::<std::net::SocketAddr>() {
            check_exposure(&addr, self.token_file.is_some())?;
        }
        Ok(())
    }
}

/// Refuses a TCP listener reachable from other hosts without a token: the read-only
/// API would be served to the network with no way to authenticate mutations.
pub fn check_exposure(addr: &std::net::SocketAddr, has_token: bool) -> Result<()> {
    if !addr.ip().is_loopback() && !has_token {
        bail!(
            "control.token_file: required when control.listen ({addr}) is not a loopback \
             address (mutations over TCP need a bearer token; or listen on 127.0.0.1)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let c = ControlConfig::default();
        assert_eq!(
            c.socket_path(),
            Some((PathBuf::from(DEFAULT_SOCKET), false))
        );
        assert_eq!(c.max_body_bytes, 64 << 20);
        c.validate().unwrap();
        let open = ControlConfig {
            listen: "0.0.0.0:9469".into(),
            ..c.clone()
        };
        let e = open.validate().unwrap_err().to_string();
        assert!(e.starts_with("control.token_file: required"), "{e}");
        let ok = ControlConfig {
            token_file: Some("t".into()),
            ..open
        };
        ok.validate().unwrap();
        let v6 = ControlConfig {
            listen: "[::1]:9469".into(),
            ..c.clone()
        };
        v6.validate().unwrap();
        let half = ControlConfig {
            tls_cert: Some("c.pem".into()),
            ..c
        };
        assert!(half
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("control.tls_key"));
    }
}
