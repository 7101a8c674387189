//! `CONNECT host:port`: decide, dial, answer `200`, then relay bytes both ways.

use egress_config::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::head::{Buffered, RequestHead};
use super::{refuse, target};
use crate::detect::ConnContext;
use crate::{decide, dial, resolve, tunnel};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

pub async fn handle(mut client: Buffered<TcpStream>, req: RequestHead, ctx: &ConnContext) {
    let protocol = Protocol::HttpConnect;
    let span = tracing::Span::current();
    span.record("protocol", protocol.as_str());
    let (host, port) = match target::parse_connect(req.target_str()) {
        Ok(target) => target,
        Err(refusal) => return refuse(&mut client.io, &refusal, protocol, None, None).await,
    };
    let authority = host.authority(port);
    span.record("target", authority.as_str());
    let snapshot = &ctx.snapshot;
    if let Err(refusal) = decide::check(snapshot, &host, port, protocol) {
        return refuse(&mut client.io, &refusal, protocol, Some(&authority), None).await;
    }
    let dialed = match resolve::resolve(&host, port, snapshot.timeouts.dial).await {
        Ok(addrs) => dial::dial(&addrs, snapshot.timeouts.dial).await,
        Err(refusal) => Err(refusal),
    };
    let mut upstream = match dialed {
        Ok(stream) => stream,
        Err(refusal) => {
            return refuse(&mut client.io, &refusal, protocol, Some(&authority), None).await
        }
    };
    if client.io.write_all(ESTABLISHED).await.is_err() {
        return;
    }
    let early = client.buf.split();
    let started = std::time::Instant::now();
    match tunnel::relay(
        &mut client.io,
        &mut upstream,
        &early,
        snapshot.timeouts.idle,
    )
    .await
    {
        Ok(moved) => info!(
            bytes_up = moved.client_to_upstream,
            bytes_down = moved.upstream_to_client,
            duration_ms = started.elapsed().as_millis() as u64,
            "tunnel closed"
        ),
        Err(error) => debug!(%error, "tunnel ended with an error"),
    }
}
