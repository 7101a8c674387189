//! HTTPS and SVCB answers, made safe to hand a filtered client: without `h3` in the ALPN set
//! (a browser would try QUIC, which the gateway rejects: a wasted round trip on every site),
//! without `ech` (an encrypted ClientHello hides the name the policy decides on; without the
//! key the client sends its SNI in the clear) and without address hints (addresses the
//! address guard did not check and the responder did not hand out: the client asks for A and
//! AAAA instead, which are checked and remembered).

use hickory_resolver::proto::rr::rdata::svcb::{Alpn, SvcParamKey, SvcParamValue, SVCB};

/// `record` without `h3` (any `h3` or `h3-` draft) in its ALPN set, and without `ech`,
/// `ipv4hint` and `ipv6hint`. An ALPN set left empty goes, with `no-default-alpn` (the client
/// then uses the default, HTTP/1.1 over TCP); `mandatory` no longer names removed keys.
pub fn strip(record: &SVCB) -> SVCB {
    let removed = |key: &SvcParamKey| {
        matches!(
            key,
            SvcParamKey::EchConfigList | SvcParamKey::Ipv4Hint | SvcParamKey::Ipv6Hint
        )
    };
    let mut params: Vec<(SvcParamKey, SvcParamValue)> = Vec::new();
    let mut alpn_emptied = false;
    for (key, value) in record.svc_params() {
        if removed(key) {
            continue;
        }
        match value {
            SvcParamValue::Alpn(Alpn(protocols)) => {
                let kept: Vec<String> = protocols
                    .iter()
                    .filter(|p| !(*p == "h3" || p.starts_with("h3-")))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    alpn_emptied = true;
                } else {
                    params.push((*key, SvcParamValue::Alpn(Alpn(kept))));
                }
            }
            other => params.push((*key, other.clone())),
        }
    }
    if alpn_emptied {
        params.retain(|(key, _)| *key != SvcParamKey::NoDefaultAlpn);
    }
    let gone: Vec<SvcParamKey> = record
        .svc_params()
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| !params.iter().any(|(kept, _)| kept == key))
        .collect();
    for (_, value) in &mut params {
        if let SvcParamValue::Mandatory(mandatory) = value {
            mandatory.0.retain(|key| !gone.contains(key));
        }
    }
    params.retain(|(_, value)| !matches!(value, SvcParamValue::Mandatory(m) if m.0.is_empty()));
    SVCB::new(record.svc_priority(), record.target_name().clone(), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::svcb::{EchConfigList, IpHint, Mandatory};
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::Name;

    fn alpn(list: &[&str]) -> (SvcParamKey, SvcParamValue) {
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(list.iter().map(|s| s.to_string()).collect())),
        )
    }

    fn svcb(params: Vec<(SvcParamKey, SvcParamValue)>) -> SVCB {
        SVCB::new(1, Name::root(), params)
    }

    #[test]
    fn h3_ech_and_hints_go_and_the_rest_stays() {
        let record = svcb(vec![
            alpn(&["h3", "h3-29", "h2", "http/1.1"]),
            (
                SvcParamKey::Ipv4Hint,
                SvcParamValue::Ipv4Hint(IpHint(vec![A::new(10, 0, 0, 5)])),
            ),
            (
                SvcParamKey::EchConfigList,
                SvcParamValue::EchConfigList(EchConfigList(vec![1, 2, 3])),
            ),
            (SvcParamKey::Port, SvcParamValue::Port(8443)),
        ]);
        let stripped = strip(&record);
        assert_eq!(
            stripped.svc_params(),
            &[
                alpn(&["h2", "http/1.1"]),
                (SvcParamKey::Port, SvcParamValue::Port(8443))
            ]
        );
        assert_eq!(stripped.svc_priority(), 1);
    }

    #[test]
    fn an_alpn_set_of_only_h3_goes_with_no_default_alpn() {
        let record = svcb(vec![
            (
                SvcParamKey::Mandatory,
                SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Alpn, SvcParamKey::Port])),
            ),
            alpn(&["h3"]),
            (SvcParamKey::NoDefaultAlpn, SvcParamValue::NoDefaultAlpn),
            (SvcParamKey::Port, SvcParamValue::Port(443)),
        ]);
        let stripped = strip(&record);
        assert_eq!(
            stripped.svc_params(),
            &[
                (
                    SvcParamKey::Mandatory,
                    SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Port])),
                ),
                (SvcParamKey::Port, SvcParamValue::Port(443)),
            ]
        );
    }
}
