//! TLS for the TCP control listener (cargo feature `tls`): rustls with the ring
//! provider, certificate chain and key from PEM files (`control.tls_cert`,
//! `control.tls_key`). TLS does not replace the token: mutations still need it.

use anyhow::{bail, Context, Result};
use std::path::Path;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Builds the acceptor from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("control.tls_cert: reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("control.tls_cert: {}", cert.display()))?;
    if certs.is_empty() {
        bail!(
            "control.tls_cert: no certificate in {} (PEM expected)",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "control.tls_key: reading a PEM private key from {}",
            key.display()
        )
    })?;
    // ring rather than aws-lc-rs: no cmake or C++ toolchain at build time. Its
    // provider lacks only the post-quantum key exchange, which is what the deprecation
    // is about.
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("control.tls_cert: TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("control.tls_key: does not match control.tls_cert")?;
    let mut cfg = cfg;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg)))
}
