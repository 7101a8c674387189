//! A static file server for the registries the clients fetch from (a pip simple index, an npm
//! registry, a cargo sparse registry, a git repository over git's "dumb" HTTP), in plain HTTP
//! and behind TLS with a certificate from the test's own CA, as a private registry would be.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The test CA and a server certificate it signed for `names`.
pub struct Pki {
    /// The CA certificate in PEM, the only thing a client needs to trust.
    pub ca_pem: String,
    pub server: rustls::ServerConfig,
}

impl Pki {
    pub fn new(names: &[&str]) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "egress clients test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let chain = vec![
            rustls::pki_types::CertificateDer::from(cert.der().to_vec()),
            rustls::pki_types::CertificateDer::from(ca.der().to_vec()),
        ];
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            server,
        }
    }
}

/// Serves `root` on 127.0.0.1:0 in plain HTTP (`tls: None`) or TLS, on `runtime`.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    tls: Option<rustls::ServerConfig>,
) -> SocketAddr {
    let root = Arc::new(root.to_path_buf());
    let acceptor = tls.map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (root, acceptor) = (root.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let root = root.clone();
                        async move { file(&root, req) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => http.serve_connection(TokioIo::new(tls), service).await,
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        });
        addr
    })
}

/// The file the path names; a directory's `index.html`, else its `index.json` (an npm
/// registry's package document lives at `/npm/NAME`, beside `/npm/NAME/-/NAME-V.tgz`).
fn file(root: &Path, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let relative = path.trim_start_matches('/');
    let mut found: PathBuf = root.join(relative);
    if relative.split('/').any(|part| part == "..") {
        return Ok(status(StatusCode::FORBIDDEN));
    }
    if found.is_dir() {
        found = ["index.html", "index.json"]
            .iter()
            .map(|index| found.join(index))
            .find(|index| index.is_file())
            .unwrap_or(found);
    }
    let Ok(bytes) = std::fs::read(&found) else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let kind = match found.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    response
        .headers_mut()
        .insert("content-type", kind.parse().unwrap());
    Ok(response)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"")));
    *response.status_mut() = code;
    response
}
