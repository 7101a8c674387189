use super::*;

fn names(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect()
}

#[test]
fn every_documented_metric_is_exported_from_the_start() {
    let m = Metrics::new(10);
    // A family appears once it has a series: parents exist only when configured.
    m.upstream_up
        .get_or_create(&UpstreamLabel {
            upstream: "corp".into(),
        })
        .set(1);
    m.policy_loaded(&crate::reload::digest(b""));
    let text = m.encode();
    let mut exported = names(&text);
    exported.sort_unstable();
    assert_eq!(
        exported,
        [
            "egress_active_connections",
            "egress_audit_lines_dropped",
            "egress_blocked_domains",
            "egress_build_info",
            "egress_bytes",
            "egress_config_last_reload_failure_timestamp_seconds",
            "egress_config_last_reload_success_timestamp_seconds",
            "egress_config_reloads",
            "egress_connect_duration_seconds",
            "egress_connections_cut",
            "egress_connections_refused_unanswered",
            "egress_decisions",
            "egress_dns_lookup_duration_seconds",
            "egress_failures",
            "egress_policy_info",
            "egress_upstream_up",
        ]
    );
    // Known label values exist as zero series: rate() and alerts work on a fresh proxy.
    assert!(text.contains(r#"egress_decisions_total{protocol="socks5",decision="deny",reason="not-allowlisted",identity="anonymous"} 0"#), "{text}");
    assert!(text.contains(
        r#"egress_decisions_total{protocol="http-connect",decision="allow",reason="none",identity="anonymous"} 0"#
    ));
    assert!(text.contains(r#"egress_active_connections{protocol="http-forward"} 0"#));
    assert!(text.contains(r#"egress_connections_cut_total{protocol="socks5"} 0"#));
    assert!(text.contains(r#"egress_config_reloads_total{result="failure"} 0"#));
    assert!(text.contains(r#"egress_connections_refused_unanswered_total{cause="busy"} 0"#));
    assert!(text.contains(r#"egress_connections_refused_unanswered_total{cause="silent"} 0"#));
    assert!(text.contains(r#"egress_blocked_domains_total{domain="other",identity="anonymous"} 0"#));
    assert!(text.contains(&format!(
        r#"egress_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn blocked_domains_are_registrable_domains_and_capped() {
    let m = Metrics::new(3);
    let host = |h: &str| Host::parse(h).unwrap();
    for name in [
        "a.b.example.co.uk",
        "x.example.co.uk",
        "evil.test",
        "10.1.2.3",
        "one.more",
        "two.more.org",
    ] {
        let label = m.domain_label(&host(name));
        m.blocked_domains
            .get_or_create(&DomainLabel {
                domain: label,
                identity: egress_config::ANONYMOUS.into(),
            })
            .inc();
    }
    let text = m.encode();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("egress_blocked_domains_total{"))
        .collect();
    assert_eq!(series.len(), 4, "cap 3 plus other: {series:?}");
    assert!(
        text.contains(
            r#"egress_blocked_domains_total{domain="example.co.uk",identity="anonymous"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"egress_blocked_domains_total{domain="other",identity="anonymous"} 2"#),
        "{text}"
    );
}

#[test]
fn registrable_domains_follow_the_public_suffix_list() {
    let r = |h: &str| registrable_domain(&Host::parse(h).unwrap());
    assert_eq!(r("www.example.com"), "example.com");
    // The list's private section counts too: each GitHub raw host is its own site.
    assert_eq!(r("raw.githubusercontent.com"), "raw.githubusercontent.com");
    assert_eq!(r("a.b.c.example.com.au"), "example.com.au");
    assert_eq!(r("foo.bar.s3.amazonaws.com"), "bar.s3.amazonaws.com");
    assert_eq!(r("localhost"), "localhost");
    assert_eq!(r("[::1]"), "::1");
}

#[test]
fn identity_labels_are_configured_names_anonymous_or_other_past_the_cap() {
    let m = Metrics::new(10);
    let record = |identity: Option<String>| {
        let mut r = Record::connection(None, Protocol::Socks5);
        r.identity = identity;
        r
    };
    assert_eq!(&*m.identity_label(&record(None)), "anonymous");
    assert_eq!(&*m.identity_label(&record(Some("alice".into()))), "alice");
    for i in 1..IDENTITY_CAP {
        m.identity_label(&record(Some(format!("user{i}"))));
    }
    assert_eq!(&*m.identity_label(&record(Some("late".into()))), OTHER);
    assert_eq!(&*m.identity_label(&record(Some("alice".into()))), "alice");
    assert_eq!(m.labelled_identities.lock().unwrap().len(), IDENTITY_CAP);
}

#[test]
fn policy_info_names_the_policy_in_force_alone() {
    let m = Metrics::new(10);
    m.policy_loaded(&crate::reload::digest(b"allow: [a.example]\n"));
    m.policy_loaded(&crate::reload::digest(b"allow: [b.example]\n"));
    let text = m.encode();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("egress_policy_info{"))
        .collect();
    // sha256 of "allow: [b.example]\n", as `sha256sum` prints it.
    let expected = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"allow: [b.example]\n")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        series,
        [format!("egress_policy_info{{sha256=\"{expected}\"}} 1")]
    );
    assert_eq!(expected.len(), 64);
}
