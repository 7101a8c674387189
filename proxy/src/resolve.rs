//! From a target host to the addresses to dial. IP literals skip DNS entirely.

use std::net::SocketAddr;
use std::time::Duration;

use egress_config::{DenyReason, Host};

use crate::answer::Refusal;

/// Resolves `host:port`, bounded by `timeout`. An empty answer is a failure, never a hang.
pub async fn resolve(
    host: &Host,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, Refusal> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => name,
    };
    let lookup = tokio::net::lookup_host((name.as_ref(), port));
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Refusal::new(
                    DenyReason::DnsFailed,
                    format!("{name} has no addresses"),
                ))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(error)) => Err(Refusal::new(
            DenyReason::DnsFailed,
            format!("{name} did not resolve: {error}"),
        )),
        Err(_) => Err(Refusal::new(
            DenyReason::DnsFailed,
            format!("looking up {name} took longer than {timeout:?}"),
        )),
    }
}
