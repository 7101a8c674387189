//! Real origins for the proxy to reach: an HTTP/1.1 server (hyper) in plain text or behind TLS
//! with a certificate made for the test, and a raw TCP echo service for tunnels.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A runtime of its own, so synchronous tests (which call curl) can run servers beside them.
pub struct Servers {
    pub runtime: tokio::runtime::Runtime,
}

impl Default for Servers {
    fn default() -> Self {
        Self::new()
    }
}

impl Servers {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Self { runtime }
    }

    /// Plain HTTP origin on 127.0.0.1:0.
    pub fn http_origin(&self) -> SocketAddr {
        self.runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_http(TokioIo::new(stream)));
                }
            });
            addr
        })
    }

    /// TLS origin on 127.0.0.1:0 with a fresh certificate for `localhost` and 127.0.0.1.
    pub fn tls_origin(&self, dir: &std::path::Path) -> TlsOrigin {
        self.tls_origin_for(dir, &["localhost", "127.0.0.1"])
    }

    /// TLS origin on 127.0.0.1:0 with a fresh certificate for `names`.
    pub fn tls_origin_for(&self, dir: &std::path::Path, names: &[&str]) -> TlsOrigin {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_path = dir.join("origin-ca.pem");
        std::fs::write(&ca_path, cert.pem()).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key_der)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let addr = self.runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            serve_http(TokioIo::new(tls)).await;
                        }
                    });
                }
            });
            addr
        });
        TlsOrigin { addr, ca_path }
    }

    /// A TCP service that echoes every byte back, for tunnel tests.
    pub fn echo(&self) -> SocketAddr {
        self.runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            });
            addr
        })
    }
}

pub struct TlsOrigin {
    pub addr: SocketAddr,
    /// The self-signed certificate, for `curl --cacert`.
    pub ca_path: PathBuf,
}

async fn serve_http<I>(io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, hyper::service::service_fn(route))
        .await;
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

/// `/hello` greets; `/echo` returns the request body; `/headers` lists the request headers;
/// `/chunked` streams a chunked body; `/bytes/N` returns N bytes.
async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        "/hello" => Response::new(full("hello from origin\n")),
        "/headers" => {
            let mut text = format!("{} {}\n", req.method(), req.uri());
            for (name, value) in req.headers() {
                text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        "/echo" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::new(full(body))
        }
        "/chunked" => {
            let frames = ["first,", "second,", "third\n"]
                .into_iter()
                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes()))));
            Response::new(BodyExt::boxed(StreamBody::new(futures_stream(frames))))
        }
        p if p.starts_with("/bytes/") => {
            let n: usize = p["/bytes/".len()..].parse().unwrap_or(0);
            Response::new(full(vec![b'x'; n]))
        }
        _ => {
            let mut r = Response::new(full("not found\n"));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(response)
}

/// An iterator as a stream (hyper's `StreamBody` wants a `Stream`).
fn futures_stream<I: Iterator + Unpin>(iter: I) -> IterStream<I> {
    IterStream(iter)
}

pub struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}
