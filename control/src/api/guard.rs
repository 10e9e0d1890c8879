//! Who may do what on the control API: the checks a request passes before its body is
//! read or its handler runs.
//!
//! * Read-only requests (`GET`) are served to anyone who can connect (TCP or socket).
//! * Everything else is a mutation (`PUT`, `POST`, `DELETE`, ...):
//!   - a request carrying an `Origin` header is refused with 403 on every transport: a
//!     browser adds it to cross-site requests, so a web page cannot flush the table;
//!   - over TCP (or TLS) it needs `Authorization: Bearer TOKEN` with the token of
//!     `control.token_file`, compared in constant time (401 and `WWW-Authenticate:
//!     Bearer` when missing or wrong; 403 when no token file is configured: TCP is then
//!     read-only);
//!   - over the unix socket the socket's permissions (0660, `control.socket_group`) are
//!     the access control, as netlink's CAP_NET_ADMIN is for conntrack-tools;
//!   - a body must be `application/json`, `text/plain` or `text/x-iptables`
//!     (parameters such as `charset` ignored), else 415; a bodiless request may omit
//!     `Content-Type`;
//!   - a `Content-Length` above `control.max_body_bytes` is refused with 413 before any
//!     of the body is read.

use anyhow::{bail, Context, Result};
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The content types a mutation's body may have.
pub const BODY_TYPES: &[&str] = &["application/json", "text/plain", "text/x-iptables"];

/// How a request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The unix socket: access is the socket file's permissions.
    Socket,
    /// TCP, plain or TLS: mutations need the bearer token.
    Tcp,
}

/// A request refused before its handler runs: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status (401, 403, 413, 415).
    pub code: u16,
    /// What was wrong, for the JSON error body.
    pub msg: String,
}

fn refuse(code: u16, msg: impl Into<String>) -> Refusal {
    Refusal {
        code,
        msg: msg.into(),
    }
}

/// The token and the body limit, shared by every connection.
#[derive(Debug)]
pub struct Policy {
    token_file: Option<PathBuf>,
    token: RwLock<Option<Vec<u8>>>,
    /// `control.max_body_bytes`.
    pub max_body: u64,
}

impl Policy {
    /// Reads the token file (if any) now.
    pub fn new(token_file: Option<&Path>, max_body: u64) -> Result<Policy> {
        let token = token_file.map(read_token).transpose()?;
        Ok(Policy {
            token_file: token_file.map(Path::to_path_buf),
            token: RwLock::new(token),
            max_body,
        })
    }

    /// Is a token configured (mutations over TCP possible)?
    pub fn has_token(&self) -> bool {
        self.token.read().map(|t| t.is_some()).unwrap_or(false)
    }

    /// Re-reads the token file (on reload); on error the previous token stays and the
    /// error is returned.
    pub fn reload_token(&self) -> Result<()> {
        if let Some(p) = &self.token_file {
            let t = read_token(p)?;
            if let Ok(mut g) = self.token.write() {
                *g = Some(t);
            }
        }
        Ok(())
    }

    /// Checks a request's method and headers; Ok when its body may be read and its
    /// handler run.
    pub fn admit(&self, transport: Transport, method: &str, h: &HeaderMap) -> Result<(), Refusal> {
        if method == "GET" || method == "HEAD" {
            return Ok(());
        }
        if h.contains_key(ORIGIN) {
            return Err(refuse(
                403,
                "mutations with an Origin header are refused (no browser-driven changes)",
            ));
        }
        if transport == Transport::Tcp {
            let token = self.token.read().map(|t| t.clone()).unwrap_or(None);
            let Some(token) = token else {
                return Err(refuse(
                    403,
                    "mutations over TCP are disabled (no control.token_file): use the unix \
                     socket (statewall ctl --socket), or configure a token",
                ));
            };
            let given = h
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, rest) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                });
            match given {
                None => return Err(refuse(401, "mutation needs Authorization: Bearer TOKEN")),
                Some(g) if !ct_eq(g.as_bytes(), &token) => {
                    return Err(refuse(401, "wrong bearer token"))
                }
                Some(_) => {}
            }
        }
        let has_body = match h.get(CONTENT_LENGTH) {
            Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0),
            None => h.contains_key(hyper::header::TRANSFER_ENCODING),
        };
        match h.get(CONTENT_TYPE) {
            Some(v) => {
                let t = v.to_str().unwrap_or("");
                let media = t.split(';').next().unwrap_or("").trim();
                if !BODY_TYPES.iter().any(|b| media.eq_ignore_ascii_case(b)) {
                    return Err(refuse(
                        415,
                        format!(
                            "Content-Type {t:?} refused for a mutation (accepted: {})",
                            BODY_TYPES.join(", ")
                        ),
                    ));
                }
            }
            None if has_body => {
                return Err(refuse(
                    415,
                    format!(
                        "a mutation with a body needs a Content-Type (accepted: {})",
                        BODY_TYPES.join(", ")
                    ),
                ))
            }
            None => {}
        }
        if let Some(n) = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            if n > self.max_body {
                return Err(too_large(self.max_body));
            }
        }
        Ok(())
    }
}

/// The 413 refusal for a body above `max` bytes.
pub fn too_large(max: u64) -> Refusal {
    refuse(
        413,
        format!("request body larger than control.max_body_bytes ({max})"),
    )
}

/// Reads a token file: its content without surrounding whitespace, not empty.
pub fn read_token(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("control.token_file: reading {}", path.display()))?;
    let t = text.trim();
    if t.is_empty() {
        bail!("control.token_file: {} is empty", path.display());
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "control.token_file: {}: the token must be one word (no spaces)",
            path.display()
        );
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o004 != 0 {
            tracing::warn!(file = %path.display(), "control.token_file is readable by every user (chmod 0600 or 0640)");
        }
    }
    Ok(t.as_bytes().to_vec())
}

/// Compares two byte strings in time that depends on their lengths only, not on where
/// they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    // Walk the expected token's length whatever the input, so the time does not tell
    // how many leading bytes matched.
    for (i, y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abd", b"abc"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"abcd", b"abc"));
        assert!(!ct_eq(b"", b"abc"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn admit_rules() {
        let p = Policy {
            token_file: None,
            token: RwLock::new(Some(b"s3cret".to_vec())),
            max_body: 100,
        };
        let tcp = Transport::Tcp;
        assert!(p.admit(tcp, "GET", &hm(&[("origin", "http://x")])).is_ok());
        let code = |t, m, h: &[(&'static str, &str)]| p.admit(t, m, &hm(h)).err().map(|r| r.code);
        assert_eq!(code(tcp, "POST", &[]), Some(401));
        assert_eq!(
            code(tcp, "POST", &[("authorization", "Bearer nope")]),
            Some(401)
        );
        assert_eq!(
            code(tcp, "POST", &[("authorization", "Basic s3cret")]),
            Some(401)
        );
        assert_eq!(
            code(tcp, "POST", &[("authorization", "Bearer s3cret")]),
            None
        );
        assert_eq!(
            code(tcp, "POST", &[("authorization", "bearer  s3cret ")]),
            None
        );
        let auth = ("authorization", "Bearer s3cret");
        assert_eq!(
            code(tcp, "POST", &[auth, ("origin", "http://evil")]),
            Some(403)
        );
        assert_eq!(
            code(Transport::Socket, "DELETE", &[("origin", "null")]),
            Some(403)
        );
        assert_eq!(code(Transport::Socket, "POST", &[]), None);
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert_eq!(code(Transport::Socket, "PUT", &[form]), Some(415));
        let len = ("content-length", "5");
        assert_eq!(code(Transport::Socket, "PUT", &[len]), Some(415));
        for t in [
            "text/plain; charset=utf-8",
            "Application/JSON",
            "text/x-iptables",
        ] {
            assert_eq!(
                code(Transport::Socket, "PUT", &[len, ("content-type", t)]),
                None
            );
        }
        let big = ("content-length", "101");
        let txt = ("content-type", "text/plain");
        assert_eq!(code(Transport::Socket, "PUT", &[big, txt]), Some(413));
        let none = Policy::new(None, 10).unwrap();
        assert_eq!(none.admit(tcp, "POST", &hm(&[auth])).unwrap_err().code, 403);
    }
}
