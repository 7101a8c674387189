//! The nftables ruleset of transparent mode, printed by `egress-proxy transparent-rules`. On a
//! gateway: TCP to the intercepted ports from the inside interface goes to egress, UDP 443
//! (QUIC) is rejected so clients fall back to TCP at once, DNS is forwarded — or, with egress's
//! DNS responder (`--dns`), not forwarded at all: clients ask the responder on the gateway, and
//! DNS to any other server is dropped — and everything else from the inside is dropped. On a host (`--local`):
//! the same for the host's own traffic, except the proxy's user (its own connections) and
//! loopback. Pure text, tested by exact output; the namespace tests load what this prints.

use std::fmt::Write;

use super::original::Diverted;

/// The firewall mark and routing table that deliver `tproxy`'d packets to this host.
pub const TPROXY_MARK: u32 = 1;
pub const TPROXY_TABLE: u32 = 100;

/// Whose connections are intercepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A gateway's clients, on this interface.
    Gateway { inside: String },
    /// This host's own programs, all but those of this user (the proxy's: a user name or uid).
    Local { proxy_user: String },
}

/// What to print the rules for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub scope: Scope,
    /// How connections reach egress.
    pub diversion: Diverted,
    /// The port of egress's `redirect://` or `tproxy://` listener.
    pub listener_port: u16,
    /// The TCP destination ports that are intercepted.
    pub ports: Vec<u16>,
    /// Egress's DNS responder answers the clients (on this host): DNS to other servers is
    /// dropped instead of let through.
    pub dns_responder: bool,
}

/// Why no ruleset can be printed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("tproxy diverts arriving packets only: use REDIRECT (no --tproxy) with --local")]
    LocalTproxy,
    #[error("{0:?} is not an interface or user name nftables can take")]
    BadName(String),
    #[error("name at least one port to intercept")]
    NoPorts,
}

/// The ruleset, as a file for `nft -f`.
pub fn ruleset(rules: &Rules) -> Result<String, RulesError> {
    let name = match &rules.scope {
        Scope::Gateway { inside } => inside,
        Scope::Local { proxy_user } => proxy_user,
    };
    // Printed into the ruleset: nothing but what an interface or user name is made of.
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.-@".contains(c);
    if name.is_empty() || !name.chars().all(plain) {
        return Err(RulesError::BadName(name.clone()));
    }
    if rules.ports.is_empty() {
        return Err(RulesError::NoPorts);
    }
    let ports: Vec<String> = rules.ports.iter().map(u16::to_string).collect();
    let ports = ports.join(", ");
    let port = rules.listener_port;
    // Without the responder, DNS goes out as it is (the names are decided when connected to).
    let (dns_local, dns_gateway) = if rules.dns_responder {
        (String::new(), String::new())
    } else {
        (
            "    meta l4proto { tcp, udp } th dport 53 accept\n".to_string(),
            format!("    iifname {name:?} meta l4proto {{ tcp, udp }} th dport 53 accept\n"),
        )
    };
    let mut out = String::new();
    if rules.dns_responder {
        out.push_str(
            "# DNS: egress's dns_server answers on this host; DNS to any other server is dropped.\n",
        );
    }
    match (&rules.scope, rules.diversion) {
        (Scope::Local { .. }, Diverted::Tproxy) => return Err(RulesError::LocalTproxy),
        (Scope::Local { proxy_user }, Diverted::Redirect) => {
            let _ = write!(
                out,
                "# egress transparent mode: this host's own programs, except user {proxy_user}.\n\
                 table inet egress {{\n\
                 \x20 chain intercept {{\n\
                 \x20   type nat hook output priority dstnat; policy accept;\n\
                 \x20   meta skuid {proxy_user} accept\n\
                 \x20   oifname \"lo\" accept\n\
                 \x20   tcp dport {{ {ports} }} redirect to :{port}\n\
                 \x20 }}\n\
                 \x20 chain outgoing {{\n\
                 \x20   type filter hook output priority filter; policy accept;\n\
                 \x20   meta skuid {proxy_user} accept\n\
                 \x20   oifname \"lo\" accept\n\
                 \x20   udp dport 443 reject\n\
                 {dns_local}\
                 \x20   drop\n\
                 \x20 }}\n\
                 }}\n"
            );
        }
        (Scope::Gateway { inside }, diversion) => {
            let _ = writeln!(
                out,
                "# egress transparent mode: a gateway whose clients are on {inside:?}."
            );
            let (hook, divert) = match diversion {
                Diverted::Redirect => (
                    "type nat hook prerouting priority dstnat; policy accept;",
                    format!("redirect to :{port}"),
                ),
                Diverted::Tproxy => {
                    let _ = writeln!(
                        out,
                        "# tproxy needs these routes too (run once, for each family):\n\
                         #   ip rule add fwmark {TPROXY_MARK} lookup {TPROXY_TABLE}\n\
                         #   ip route add local 0.0.0.0/0 dev lo table {TPROXY_TABLE}\n\
                         #   ip -6 rule add fwmark {TPROXY_MARK} lookup {TPROXY_TABLE}\n\
                         #   ip -6 route add local ::/0 dev lo table {TPROXY_TABLE}"
                    );
                    (
                        "type filter hook prerouting priority mangle; policy accept;",
                        format!("meta mark set {TPROXY_MARK} tproxy to :{port} accept"),
                    )
                }
            };
            let _ = write!(
                out,
                "table inet egress {{\n\
                 \x20 chain intercept {{\n\
                 \x20   {hook}\n\
                 \x20   iifname {inside:?} tcp dport {{ {ports} }} {divert}\n\
                 \x20 }}\n\
                 \x20 chain forward {{\n\
                 \x20   type filter hook forward priority filter; policy accept;\n\
                 \x20   iifname {inside:?} udp dport 443 reject\n\
                 {dns_gateway}\
                 \x20   iifname {inside:?} drop\n\
                 \x20 }}\n\
                 }}\n"
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(scope: Scope, diversion: Diverted) -> Result<String, RulesError> {
        ruleset(&Rules {
            scope,
            diversion,
            listener_port: 3129,
            ports: vec![80, 443],
            dns_responder: false,
        })
    }

    fn gateway(diversion: Diverted) -> String {
        let inside = "eth1".to_string();
        rules(Scope::Gateway { inside }, diversion).unwrap()
    }

    #[test]
    fn redirect_rules_are_exactly_these() {
        assert_eq!(
            gateway(Diverted::Redirect),
            "# egress transparent mode: a gateway whose clients are on \"eth1\".\n\
             table inet egress {\n\
             \x20 chain intercept {\n\
             \x20   type nat hook prerouting priority dstnat; policy accept;\n\
             \x20   iifname \"eth1\" tcp dport { 80, 443 } redirect to :3129\n\
             \x20 }\n\
             \x20 chain forward {\n\
             \x20   type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"eth1\" udp dport 443 reject\n\
             \x20   iifname \"eth1\" meta l4proto { tcp, udp } th dport 53 accept\n\
             \x20   iifname \"eth1\" drop\n\
             \x20 }\n\
             }\n"
        );
    }

    #[test]
    fn with_the_dns_responder_no_dns_goes_out() {
        for scope in [
            Scope::Gateway {
                inside: "eth1".into(),
            },
            Scope::Local {
                proxy_user: "egress".into(),
            },
        ] {
            let text = ruleset(&Rules {
                scope,
                diversion: Diverted::Redirect,
                listener_port: 3129,
                ports: vec![80, 443],
                dns_responder: true,
            })
            .unwrap();
            assert!(!text.contains("dport 53"), "{text}");
            assert!(
                text.starts_with("# DNS: egress's dns_server answers"),
                "{text}"
            );
            assert!(text.contains("drop\n  }\n}\n"), "{text}");
        }
    }

    #[test]
    fn tproxy_rules_mark_and_divert_and_name_their_routes() {
        let rules = gateway(Diverted::Tproxy);
        assert!(rules.contains("#   ip rule add fwmark 1 lookup 100\n"));
        assert!(rules.contains("#   ip -6 route add local ::/0 dev lo table 100\n"));
        assert!(rules.contains(
            "    type filter hook prerouting priority mangle; policy accept;\n    \
             iifname \"eth1\" tcp dport { 80, 443 } meta mark set 1 tproxy to :3129 accept\n"
        ));
        assert!(rules.ends_with("    iifname \"eth1\" drop\n  }\n}\n"));
    }

    #[test]
    fn local_rules_spare_the_proxy_user_and_loopback() {
        let local = |user: &str| Scope::Local {
            proxy_user: user.into(),
        };
        let text = rules(local("egress"), Diverted::Redirect).unwrap();
        assert!(text.contains(
            "    type nat hook output priority dstnat; policy accept;\n    \
             meta skuid egress accept\n    oifname \"lo\" accept\n    \
             tcp dport { 80, 443 } redirect to :3129\n"
        ));
        assert!(text.ends_with("    drop\n  }\n}\n"));
        assert_eq!(
            rules(local("egress"), Diverted::Tproxy),
            Err(RulesError::LocalTproxy)
        );
        for bad in ["", "a b", "x; flush ruleset", "\"q\""] {
            assert!(matches!(
                rules(local(bad), Diverted::Redirect),
                Err(RulesError::BadName(_))
            ));
            let inside = bad.to_string();
            assert!(matches!(
                rules(Scope::Gateway { inside }, Diverted::Redirect),
                Err(RulesError::BadName(_))
            ));
        }
    }
}
