//! Intercepted clients have identities too: they cannot log in (they do not know a proxy is
//! there), so their source network names them, else they are `anonymous`; the identity's own
//! policy decides, and the audit line and metrics carry its name.

use super::gateway::{Gateway, BOTH, ORIGIN, ORIGIN6};
use super::{assert_http_refused, assert_origin_answered, assert_tls_refused, http, https, HOSTS};

/// The client's IPv4 address is in `inside`'s network, its IPv6 address in none; `inside`'s
/// group allows `group.test`, which the base policy does not.
const POLICY: &str = "admin: 127.0.0.1:0\n\
                      allow: [allowed.test]\n\
                      identities: { inside: { networks: [198.18.1.0/24], groups: [extra] } }\n\
                      groups: { extra: { allow: [group.test] } }\n\
                      dns: { timeout: 1s }\n\
                      address_guard: { allow_networks: [198.18.0.0/15, \"2001:2::/48\"] }\n";

#[test]
fn an_intercepted_client_is_named_by_its_network_and_gets_that_identitys_policy() {
    let hosts = format!("{HOSTS}198.18.2.2 group.test\n2001:2:0:2::2 group.test\n");
    for diversion in BOTH {
        let gw = Gateway::start(diversion, POLICY, &hosts);
        assert_origin_answered(&https(&gw, "group.test", ORIGIN), ORIGIN, "group.test");
        let r = http(&gw, "group.test", ORIGIN, &[]);
        assert_origin_answered(&r, ORIGIN, "None");
        // The same client over IPv6 comes from no identity's network: anonymous, base policy.
        assert_tls_refused(&https(&gw, "group.test", ORIGIN6));
        assert_http_refused(
            &http(&gw, "group.test", ORIGIN6, &[]),
            403,
            "not-allowlisted",
        );
        let seen = |identity: &str, decision: &str, n: usize| {
            gw.audit()
                .iter()
                .filter(|l| {
                    l["protocol"] == "transparent"
                        && l["host"] == "group.test"
                        && l["identity"] == identity
                        && l["decision"] == decision
                })
                .count()
                == n
        };
        crate::support::wait::until("the audit lines of both identities", || {
            seen("inside", "allow", 2) && seen("anonymous", "deny", 2)
        });
        let admin = gw.admin();
        let metrics = gw.curl_on_gateway(&[&format!("http://{admin}/metrics")]);
        assert!(
            metrics
                .stdout
                .lines()
                .any(|l| l.starts_with("egress_decisions_total{")
                    && l.contains("protocol=\"transparent\"")
                    && l.contains("identity=\"inside\"")
                    && l.contains("decision=\"allow\"")),
            "{metrics:?}"
        );
    }
}
