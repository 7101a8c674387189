//! The nftables ruleset of a transparent gateway, printed by `egress-proxy transparent-rules`:
//! TCP to the intercepted ports from the inside interface goes to egress, UDP 443 (QUIC) is
//! rejected so clients fall back to TCP at once, DNS is forwarded (until egress answers it
//! itself), and everything else from the inside is dropped. Pure text, tested by exact output;
//! the namespace tests load exactly what this prints.

use std::fmt::Write;

use super::original::Diverted;

/// The firewall mark and routing table that deliver `tproxy`'d packets to this host.
pub const TPROXY_MARK: u32 = 1;
pub const TPROXY_TABLE: u32 = 100;

/// What to print the rules for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The interface the clients are on.
    pub inside: String,
    /// How connections reach egress.
    pub diversion: Diverted,
    /// The port of egress's `redirect://` or `tproxy://` listener.
    pub listener_port: u16,
    /// The TCP destination ports that are intercepted.
    pub ports: Vec<u16>,
}

/// The ruleset, as a file for `nft -f`.
pub fn ruleset(gateway: &Gateway) -> String {
    let Gateway {
        inside,
        diversion,
        listener_port,
        ports,
    } = gateway;
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports = ports.join(", ");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# egress transparent mode: a gateway whose clients are on {inside:?}."
    );
    let (hook, divert) = match diversion {
        Diverted::Redirect => (
            "type nat hook prerouting priority dstnat; policy accept;",
            format!("redirect to :{listener_port}"),
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
                format!("meta mark set {TPROXY_MARK} tproxy to :{listener_port} accept"),
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
         \x20   iifname {inside:?} meta l4proto {{ tcp, udp }} th dport 53 accept\n\
         \x20   iifname {inside:?} drop\n\
         \x20 }}\n\
         }}\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(diversion: Diverted) -> Gateway {
        Gateway {
            inside: "eth1".into(),
            diversion,
            listener_port: 3129,
            ports: vec![80, 443],
        }
    }

    #[test]
    fn redirect_rules_are_exactly_these() {
        assert_eq!(
            ruleset(&gateway(Diverted::Redirect)),
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
    fn tproxy_rules_mark_and_divert_and_name_their_routes() {
        let rules = ruleset(&gateway(Diverted::Tproxy));
        assert!(rules.contains("#   ip rule add fwmark 1 lookup 100\n"));
        assert!(rules.contains("#   ip -6 route add local ::/0 dev lo table 100\n"));
        assert!(rules.contains(
            "    type filter hook prerouting priority mangle; policy accept;\n    \
             iifname \"eth1\" tcp dport { 80, 443 } meta mark set 1 tproxy to :3129 accept\n"
        ));
        assert!(rules.ends_with("    iifname \"eth1\" drop\n  }\n}\n"));
    }
}
