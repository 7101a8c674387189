//! The "resolve + check" step: the target's addresses, each checked by the address guard, so that
//! only checked addresses are ever dialed. A name with any special address among its answers is
//! refused as a whole: mixing public and private answers is how DNS rebinding starts.

use std::net::{IpAddr, SocketAddr};

use egress_config::guard::SpecialKind;
use egress_config::{DenyReason, Host};
use tracing::warn;

use egress_config::guard::AddressGuard;

use crate::answer::Refusal;
use crate::resolve::Resolver;
use crate::state::Snapshot;

/// Resolves `host:port` once and checks every address. `explicit_address`: the allow entry
/// names this target's address (an IP or CIDR entry, or `localhost`), which exempts it.
pub async fn resolve_checked(
    snapshot: &Snapshot,
    host: &Host,
    port: u16,
    explicit_address: bool,
) -> Result<Vec<SocketAddr>, Refusal> {
    resolve_with(
        &snapshot.resolver,
        &snapshot.guard,
        host,
        port,
        explicit_address,
    )
    .await
}

/// `resolve_checked` with the resolver and guard given apart (ask mode checks before it asks).
pub async fn resolve_with(
    resolver: &Resolver,
    guard: &AddressGuard,
    host: &Host,
    port: u16,
    explicit_address: bool,
) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs = resolver.resolve(host, port).await?;
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    check_all(guard, host, &ips, explicit_address)?;
    Ok(addrs)
}

/// Checks every one of `host`'s `addresses` with the address guard: the first special one
/// refuses the whole answer (`private-address`). Also what the DNS responder applies before it
/// hands an answer out.
pub fn check_all(
    guard: &AddressGuard,
    host: &Host,
    addresses: &[IpAddr],
    explicit_address: bool,
) -> Result<(), Refusal> {
    for &ip in addresses {
        let Err(special) = guard.check(ip) else {
            continue;
        };
        if exempt(host, explicit_address, special.kind) {
            continue;
        }
        let detail = match host {
            Host::Ip(ip) => format!("{ip} is a {special} address"),
            Host::Name(name) => format!("{name} resolves to {ip}, a {special} address"),
        };
        warn!(
            decision = "deny",
            reason = DenyReason::PrivateAddress.as_str(),
            address = %ip,
            kind = special.kind.as_str(),
            "address guard"
        );
        return Err(Refusal::new(DenyReason::PrivateAddress, detail));
    }
    Ok(())
}

/// An allow entry written for the address itself is a deliberate exception: an IP or CIDR entry
/// for an IP-literal target, or `localhost` for the loopback addresses it resolves to.
fn exempt(host: &Host, explicit_address: bool, kind: SpecialKind) -> bool {
    explicit_address
        && match host {
            Host::Ip(_) => true,
            Host::Name(name) => &**name == "localhost" && kind == SpecialKind::Loopback,
        }
}
