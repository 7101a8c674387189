//! `pin`: an intercepted connection reaches its original destination only when that address is
//! one the name resolves to, or one egress's DNS responder handed this client for the name —
//! and the address guard has the last word either way.

use std::net::SocketAddr;

use egress_config::{DenyReason, Host, Protocol, Request};

use super::{pin, Pinned, Way};
use crate::parent::health::HealthTable;
use crate::state::Snapshot;

fn snapshot() -> Snapshot {
    let config = egress_config::load_str(
        "allow: [app.test]\naddress_guard: { allow_networks: [198.18.0.0/15] }\n",
        "test",
    )
    .unwrap();
    Snapshot::from_config(&config, &HealthTable::new(None))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn pinned(original: &str, handed: bool) -> Result<Way, DenyReason> {
    let snapshot = snapshot();
    let host = Host::parse("app.test").unwrap();
    let verdict = snapshot.policy.decide(&Request {
        host: &host,
        port: 443,
        protocol: Protocol::Transparent,
    });
    // What egress's own lookup said.
    let way = Way::Direct(vec![addr("198.18.2.2:443")]);
    let pinned = Pinned {
        original: addr(original),
        handed,
    };
    pin(&snapshot, way, &host, 443, &verdict, pinned)
        .await
        .map_err(|r| r.reason)
}

fn direct(way: Way) -> Vec<SocketAddr> {
    match way {
        Way::Direct(addrs) => addrs,
        Way::Parent(route) => panic!("through {route}"),
    }
}

#[tokio::test]
async fn an_address_of_the_name_is_dialed_alone() {
    let way = pinned("198.18.2.2:443", false).await.unwrap();
    assert_eq!(direct(way), vec![addr("198.18.2.2:443")]);
}

#[tokio::test]
async fn another_address_is_a_host_mismatch_unless_the_responder_handed_it_out() {
    assert_eq!(
        pinned("198.18.2.9:443", false).await.unwrap_err(),
        DenyReason::HostMismatch
    );
    let way = pinned("198.18.2.9:443", true).await.unwrap();
    assert_eq!(direct(way), vec![addr("198.18.2.9:443")]);
    // Another port than the name was decided for: the lookup decides again.
    assert_eq!(
        pinned("198.18.2.9:8443", true).await.unwrap_err(),
        DenyReason::HostMismatch
    );
}

#[tokio::test]
async fn a_handed_address_still_passes_the_guard() {
    for special in ["10.0.0.5:443", "169.254.169.254:443", "127.0.0.1:443"] {
        assert_eq!(
            pinned(special, true).await.unwrap_err(),
            DenyReason::PrivateAddress,
            "{special}"
        );
    }
}
