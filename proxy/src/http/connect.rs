//! `CONNECT host:port`: decide, then open the tunnel (`establish`) and answer `200` when it is up.

use egress_config::Protocol;
use tokio::net::TcpStream;

use super::{refuse, target};
use crate::context::ConnContext;
use crate::establish::{self, Target};
use crate::h1::head::{Buffered, RequestHead};
use crate::{decide, tunnel};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

pub async fn handle(
    client: Buffered<TcpStream>,
    req: RequestHead,
    ctx: &ConnContext,
    identity: &str,
) {
    let Buffered {
        io: mut client,
        buf: early,
    } = client;
    let protocol = Protocol::HttpConnect;
    crate::account::open_as(protocol);
    let span = tracing::Span::current();
    span.record("protocol", protocol.as_str());
    let (host, port) = match target::parse_connect(req.target_str()) {
        Ok(target) => target,
        Err(refusal) => return refuse(&mut client, &refusal, protocol, None, None).await,
    };
    // The head shares its read buffer with `early`; nothing below needs it, and a tunnel should
    // not keep it alive.
    drop(req);
    let authority = host.authority(port);
    span.record("target", authority.as_str());
    let snapshot = &ctx.snapshot;
    let verdict = match decide::decide(ctx, identity, &host, port, protocol).await {
        Ok(verdict) => verdict,
        Err(refusal) => {
            return refuse(&mut client, &refusal, protocol, Some(&authority), None).await
        }
    };
    let target = Target::allowed(
        ctx.client,
        &host,
        port,
        protocol,
        verdict,
        snapshot.policy_for(identity),
    );
    let opened = establish::open(&client, early, target, snapshot, |_bound| {
        tunnel::write_all(&client, ESTABLISHED, snapshot.timeouts.idle)
    })
    .await;
    if let Err(refusal) = opened {
        refuse(
            &mut client,
            &refusal,
            protocol,
            Some(&authority),
            verdict.rule,
        )
        .await;
    }
}
