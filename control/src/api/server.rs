//! The control API's server: hyper (HTTP/1.1) on a single-threaded tokio runtime in the
//! `statewall-api` thread, plus one blocking thread for the handlers ([`super::handle`]
//! reads the runtime and sends commands to workers). The control plane stays two
//! threads, kept off the worker cores (their CPU mask drops every worker's core when
//! another core is allowed).
//!
//! Slow clients cannot stop it: each connection is a task, the headers must arrive
//! within `control.header_timeout_ms` (a half-open connection costs a task and a
//! socket until then), a body within `control.body_timeout_ms` (408), a TLS handshake
//! within the header timeout, and at most `control.max_connections` are served at once
//! (more are closed at accept). A connection lives at most [`MAX_CONN_LIFE`].

use super::guard::{Policy, Refusal, Transport};
use super::socket::SocketFile;
use crate::config::ControlConfig;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Longest a connection is kept, whatever it does.
pub const MAX_CONN_LIFE: Duration = Duration::from_secs(300);

/// The bound listeners (binding happens before anything else starts, so that a busy
/// address or a live statewall on the socket fails `statewall run` at once).
pub struct Listeners {
    tcp: Option<std::net::TcpListener>,
    unix: Option<(std::os::unix::net::UnixListener, SocketFile)>,
    policy: Arc<Policy>,
    limits: Limits,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    body_timeout: Duration,
    header_timeout: Duration,
    max_conns: usize,
}

impl Listeners {
    /// Reads the token and TLS files and binds `control.listen` and `control.socket`;
    /// each error names its field.
    pub fn bind(c: &ControlConfig) -> Result<Listeners> {
        let policy = Arc::new(Policy::new(c.token_file.as_deref(), c.max_body_bytes)?);
        #[cfg(feature = "tls")]
        let tls = match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some(super::tls::acceptor(cert, key)?),
            _ => None,
        };
        let tcp = if c.listen.is_empty() {
            None
        } else {
            let addrs: Vec<SocketAddr> = c
                .listen
                .to_socket_addrs()
                .map_err(|e| {
                    anyhow::anyhow!("control.listen: cannot listen on {:?}: {e}", c.listen)
                })?
                .collect();
            for a in &addrs {
                crate::config::check_exposure(a, policy.has_token())?;
            }
            let l = std::net::TcpListener::bind(&addrs[..]).map_err(|e| {
                anyhow::anyhow!("control.listen: cannot listen on {:?}: {e}", c.listen)
            })?;
            deepen_backlog(&l);
            Some(l)
        };
        let unix = match c.socket_path() {
            None => None,
            Some((path, explicit)) => {
                super::socket::bind(&path, explicit, c.socket_group.as_deref())?
            }
        };
        if let Some((u, _)) = &unix {
            deepen_backlog(u);
        }
        Ok(Listeners {
            tcp,
            unix,
            policy,
            limits: Limits {
                body_timeout: Duration::from_millis(c.body_timeout_ms),
                header_timeout: Duration::from_millis(c.header_timeout_ms),
                max_conns: c.max_connections,
            },
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// std binds with a backlog of 128: a burst of connections (a slowloris) would overflow
/// it and stall honest clients in SYN retries. Ask for the kernel's maximum
/// (`net.core.somaxconn` caps it).
fn deepen_backlog(l: &impl std::os::fd::AsRawFd) {
    // SAFETY: listen(2) on a socket we own that is already listening only changes its
    // backlog.
    unsafe {
        libc::listen(l.as_raw_fd(), 4096);
    }
}

/// The running API server; stops (and removes its socket) on drop.
pub struct Api {
    tcp: Option<SocketAddr>,
    socket: Option<PathBuf>,
    tls: bool,
    policy: Arc<Policy>,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    /// The TCP address, if listening.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The unix socket's path, if listening.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// Is TCP served with TLS?
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Re-reads `control.token_file` (SIGHUP); the old token stays on error.
    pub fn reload_token(&self) {
        if let Err(e) = self.policy.reload_token() {
            tracing::warn!(error = %format!("{e:#}"), "keeping the previous control token");
        }
    }

    /// One line for the start banner: where the API listens.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(a) = self.tcp {
            let s = if self.tls { "https" } else { "http" };
            v.push(format!("/metrics and the API on {s}://{a}"));
        }
        if let Some(p) = &self.socket {
            v.push(format!("control socket {}", p.display()));
        }
        v.join(", ")
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    rt: Arc<Runtime>,
    policy: Arc<Policy>,
    limits: Limits,
    conns: Arc<tokio::sync::Semaphore>,
}

/// Starts the server thread on bound listeners.
pub fn serve(rt: Arc<Runtime>, l: Listeners) -> Result<Api> {
    let tcp_addr = l.tcp_addr();
    let socket = l.unix.as_ref().map(|(_, f)| f.path.clone());
    #[cfg(feature = "tls")]
    let tls = l.tls.is_some();
    #[cfg(not(feature = "tls"))]
    let tls = false;
    let stop = Arc::new(tokio::sync::Notify::new());
    let policy = l.policy.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(1)
        .thread_name("statewall-api-h")
        .build()
        .context("starting the control API runtime")?;
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("statewall-api".into())
        .spawn(move || {
            keep_off_worker_cores(&rt);
            runtime.block_on(run(rt, l, stop2));
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(Api {
        tcp: tcp_addr,
        socket,
        tls,
        policy,
        stop,
        thread: Some(thread),
    })
}

/// Takes the worker cores out of this thread's CPU mask (the handler thread, started
/// from it, inherits the mask): the control plane never competes with a busy-polling
/// worker. When the workers have every allowed core, the mask stays as it is.
fn keep_off_worker_cores(rt: &Runtime) {
    let cores = crate::runtime::worker_cores(&rt.cfg, rt.workers.len());
    // SAFETY: a zeroed cpu_set_t is the empty set; sched_{get,set}affinity get a valid
    // pointer and its size; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return;
        }
        let mut left = set;
        for &c in &cores {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_CLR(c, &mut left);
            }
        }
        if libc::CPU_COUNT(&left) > 0 && libc::CPU_COUNT(&left) < libc::CPU_COUNT(&set) {
            libc::sched_setaffinity(0, size, &left);
        }
    }
}

async fn run(rt: Arc<Runtime>, l: Listeners, stop: Arc<tokio::sync::Notify>) {
    let sh = Arc::new(Shared {
        rt,
        policy: l.policy.clone(),
        limits: l.limits,
        conns: Arc::new(tokio::sync::Semaphore::new(l.limits.max_conns)),
    });
    // Keeps the socket file until the server stops.
    let (unix, _file) = match l.unix {
        Some((u, f)) => (Some(u), Some(f)),
        None => (None, None),
    };
    let tcp = l.tcp.and_then(|t| {
        t.set_nonblocking(true).ok()?;
        tokio::net::TcpListener::from_std(t)
            .map_err(|e| tracing::error!(error = %e, "control.listen"))
            .ok()
    });
    let unix = unix.and_then(|u| {
        u.set_nonblocking(true).ok()?;
        tokio::net::UnixListener::from_std(u)
            .map_err(|e| tracing::error!(error = %e, "control.socket"))
            .ok()
    });
    #[cfg(feature = "tls")]
    let tls = l.tls;
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            r = accept_tcp(tcp.as_ref()) => match r {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let Some(permit) = permit(&sh) else { continue };
                    #[cfg(feature = "tls")]
                    if let Some(acc) = &tls {
                        let (acc, sh) = (acc.clone(), sh.clone());
                        tokio::spawn(async move {
                            let hs = tokio::time::timeout(sh.limits.header_timeout, acc.accept(s));
                            if let Ok(Ok(s)) = hs.await {
                                conn(sh, s, Transport::Tcp).await;
                            }
                            drop(permit);
                        });
                        continue;
                    }
                    let sh = sh.clone();
                    tokio::spawn(async move {
                        conn(sh, s, Transport::Tcp).await;
                        drop(permit);
                    });
                }
                Err(e) => accept_error(e).await,
            },
            r = accept_unix(unix.as_ref()) => match r {
                Ok(s) => {
                    let Some(permit) = permit(&sh) else { continue };
                    let sh = sh.clone();
                    tokio::spawn(async move {
                        conn(sh, s, Transport::Socket).await;
                        drop(permit);
                    });
                }
                Err(e) => accept_error(e).await,
            },
        }
    }
}

fn permit(sh: &Shared) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let p = sh.conns.clone().try_acquire_owned().ok();
    if p.is_none() {
        tracing::debug!("control.max_connections reached: closing a new connection");
    }
    p
}

async fn accept_tcp(l: Option<&tokio::net::TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_unix(
    l: Option<&tokio::net::UnixListener>,
) -> std::io::Result<tokio::net::UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Out of file descriptors (or another accept error): pause instead of spinning.
async fn accept_error(e: std::io::Error) {
    tracing::warn!(error = %e, "control API: accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn conn<S>(sh: Arc<Shared>, io: S, transport: Transport)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let sh = sh.clone();
        hyper::service::service_fn(move |req| {
            let sh = sh.clone();
            async move { Ok::<_, std::convert::Infallible>(respond(&sh, transport, req).await) }
        })
    };
    let c = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(sh.limits.header_timeout)
        .max_buf_size(64 << 10)
        .serve_connection(TokioIo::new(io), svc);
    let _ = tokio::time::timeout(MAX_CONN_LIFE, c).await;
}

type Resp = Response<Full<Bytes>>;

fn reply(code: u16, ctype: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(ctype) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// A refusal before the body is read: the connection closes after the answer (the
/// unread body is never drained).
fn refused(r: Refusal) -> Resp {
    let (code, ctype, body) = super::err(r.code, r.msg);
    let mut resp = reply(code, ctype, body);
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    if code == 401 {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"statewall\""),
        );
    }
    resp
}

async fn respond(sh: &Arc<Shared>, transport: Transport, req: Request<Incoming>) -> Resp {
    let method = req.method().as_str().to_string();
    if let Err(r) = sh.policy.admit(transport, &method, req.headers()) {
        return refused(r);
    }
    let url = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let body = if method == "GET" || method == "HEAD" {
        String::new()
    } else {
        let max = sh.policy.max_body;
        let limited = Limited::new(req.into_body(), usize::try_from(max).unwrap_or(usize::MAX));
        match tokio::time::timeout(sh.limits.body_timeout, limited.collect()).await {
            Err(_) => {
                return refused(Refusal {
                    code: 408,
                    msg: format!(
                        "request body not received within control.body_timeout_ms ({})",
                        sh.limits.body_timeout.as_millis()
                    ),
                })
            }
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return refused(super::guard::too_large(max))
            }
            Ok(Err(e)) => {
                return refused(Refusal {
                    code: 400,
                    msg: format!("reading the request body: {e}"),
                })
            }
            Ok(Ok(b)) => match String::from_utf8(b.to_bytes().to_vec()) {
                Ok(s) => s,
                Err(_) => {
                    return refused(Refusal {
                        code: 400,
                        msg: "request body is not UTF-8".into(),
                    })
                }
            },
        }
    };
    let sh2 = sh.clone();
    let m = method.clone();
    let u = url.clone();
    let r = tokio::task::spawn_blocking(move || super::handle(&sh2.rt, &m, &u, &body)).await;
    let (code, ctype, text) = match r {
        Ok(r) => r,
        Err(e) => super::err(500, format!("handler failed: {e}")),
    };
    if code == 200 && method == "POST" && url.starts_with("/api/v1/reload") {
        if let Err(e) = sh.policy.reload_token() {
            tracing::warn!(error = %format!("{e:#}"), "keeping the previous control token");
        }
    }
    reply(code, ctype, text)
}
