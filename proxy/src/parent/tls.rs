//! TLS to an `https://` parent (Squid's `https_port`): rustls, HTTP/1.1 only, the parent's
//! certificate verified against the system roots plus `ca_file` and for the host name in its
//! URL, an optional client certificate. CONNECT and forwarded requests then go inside the
//! session.
//!
//! The rest of egress moves bytes between plain `TcpStream`s (the tunnel splices them), so the
//! TLS session is handed back as one: a loopback socket pair whose far end a small task pumps
//! through the TLS session. That costs one local copy per direction, measured in bench/, and
//! keeps TLS out of every other module.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use egress_config::{DenyReason, Host, ParentTls, Upstream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::debug;

use crate::answer::Refusal;

/// A parent's TLS settings turned into a rustls configuration. Built once per parent and
/// snapshot (a reload reads rotated files again).
pub fn client_config(tls: &ParentTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    // Unreadable system roots are not fatal when a ca_file names the parent's CA.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &tls.ca_file {
        let certs = read_certs(path)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("ca_file {}: no usable certificate", path.display()));
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA: the system has no roots and no ca_file is set".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client_cert: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    // Proxying is HTTP/1.1: CONNECT and absolute-form requests.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Why a TLS session to a parent broke after its handshake. In TLS 1.3 a parent that rejects
/// the client's certificate says so only after egress has finished its handshake; the plain
/// side then just sees the connection close, and this tells why.
#[derive(Debug, Clone, Default)]
pub struct Watch(Arc<OnceLock<String>>);

impl Watch {
    /// `upstream-tls-failed` with the TLS error, when the session ended in one.
    pub fn failure(&self) -> Option<Refusal> {
        self.0.get().map(|why| {
            Refusal::new(
                DenyReason::UpstreamTlsFailed,
                format!("TLS to the parent: {why}"),
            )
        })
    }
}

/// Runs the TLS handshake with `upstream` on `stream` until `deadline` and hands the session
/// back as a plain stream. Every failure is `upstream-tls-failed` with rustls's reason.
pub async fn wrap(
    stream: TcpStream,
    upstream: &Upstream,
    config: Result<Arc<ClientConfig>, String>,
    deadline: Instant,
) -> Result<(TcpStream, Watch), Refusal> {
    let failed = |why: String| {
        Refusal::new(
            DenyReason::UpstreamTlsFailed,
            format!("TLS to the parent: {why}"),
        )
    };
    let config = config.map_err(&failed)?;
    let name = match &upstream.host {
        Host::Name(name) => ServerName::try_from(name.to_string()),
        Host::Ip(ip) => Ok(ServerName::from(*ip)),
    }
    .map_err(|e| failed(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let session = match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(failed(handshake_error(&e))),
        Err(_) => {
            return Err(Refusal::new(
                DenyReason::UpstreamTimeout,
                "TLS to the parent: no handshake in time".to_string(),
            ))
        }
    };
    bridge(session)
        .await
        .map_err(|e| failed(format!("local bridge: {e}")))
}

/// rustls's own words for why a handshake failed (unknown issuer, name mismatch, the parent
/// wanting a certificate), which is what the operator needs to fix it.
fn handshake_error(error: &io::Error) -> String {
    match error.get_ref() {
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    }
}

/// A loopback pair: the near end is returned, the far end is pumped through `session` until
/// either side closes. Only the connection from our own near end is taken: a local process
/// racing to the ephemeral port is turned away.
async fn bridge(
    session: tokio_rustls::client::TlsStream<TcpStream>,
) -> io::Result<(TcpStream, Watch)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let near = TcpStream::connect(listener.local_addr()?).await?;
    let ours = near.local_addr()?;
    let far = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let (far, peer) = listener.accept().await?;
            if peer == ours {
                return Ok::<_, io::Error>(far);
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "loopback accept"))??;
    drop(listener);
    near.set_nodelay(true)?;
    far.set_nodelay(true)?;
    let watch = Watch::default();
    let failure = watch.clone();
    tokio::spawn(async move {
        let (mut far, mut session) = (far, session);
        let result = tokio::io::copy_bidirectional(&mut far, &mut session).await;
        debug!(?result, "TLS parent session ended");
        if let Err(e) = result {
            // Recorded before `far` closes, so whoever sees the close finds the reason.
            let _ = failure.0.set(handshake_error(&e));
        }
        drop(far);
    });
    Ok((near, watch))
}
