use super::*;

fn host(text: &str) -> Host {
    Host::parse(text).unwrap()
}

fn p(text: &str) -> Pattern {
    Pattern::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn rejected(text: &str) -> PatternError {
    match Pattern::parse(text) {
        Err(e) => e,
        Ok(p) => panic!("{text:?} should be rejected, parsed as {p:?}"),
    }
}

#[test]
fn an_exact_name_matches_only_itself() {
    let exact = p("github.com");
    assert!(exact.matches_host(&host("github.com")));
    assert!(
        exact.matches_host(&host("GitHub.COM.")),
        "normalised before matching"
    );
    assert!(!exact.matches_host(&host("api.github.com")));
    assert!(!exact.matches_host(&host("notgithub.com")));
    assert!(!exact.matches_host(&host("github.com.evil.example")));
}

#[test]
fn star_dot_matches_subdomains_only() {
    let sub = p("*.githubusercontent.com");
    assert!(sub.matches_host(&host("raw.githubusercontent.com")));
    assert!(sub.matches_host(&host("a.b.githubusercontent.com")));
    assert!(
        !sub.matches_host(&host("githubusercontent.com")),
        "not the apex"
    );
    assert!(
        !sub.matches_host(&host("evilgithubusercontent.com")),
        "label boundary"
    );
}

#[test]
fn leading_dot_matches_apex_and_subdomains() {
    let both = p(".crates.io");
    assert!(both.matches_host(&host("crates.io")));
    assert!(both.matches_host(&host("static.crates.io")));
    assert!(!both.matches_host(&host("xcrates.io")));
    assert!(!both.matches_host(&host("crates.io.evil.example")));
}

#[test]
fn patterns_are_normalised_like_hosts() {
    assert_eq!(p("GitHub.COM.").host(), HostPattern::Exact("github.com"));
    assert_eq!(
        p("*.Bücher.example").host(),
        HostPattern::Subdomains("xn--bcher-kva.example")
    );
    assert_eq!(p("  example.com  ").text(), "example.com");
}

#[test]
fn the_text_stays_as_written_whether_the_name_is_a_part_of_it_or_kept_after_it() {
    for (written, host) in [
        ("GitHub.COM.:443", HostPattern::Exact("github.com")),
        (
            "*.Bücher.example:80,443",
            HostPattern::Subdomains("xn--bcher-kva.example"),
        ),
        (
            ".crates.io:8000-8999",
            HostPattern::DomainAndSubdomains("crates.io"),
        ),
        ("*.a.example", HostPattern::Subdomains("a.example")),
        ("[::1]:8080", HostPattern::Ip("::1".parse().unwrap())),
        (
            "10.1.2.3/8",
            HostPattern::Net("10.0.0.0/8".parse().unwrap()),
        ),
    ] {
        let pattern = p(written);
        assert_eq!(pattern.text(), written);
        assert_eq!(pattern.to_string(), written);
        assert_eq!(pattern.host(), host, "{written}");
    }
}

#[test]
fn ports_default_to_none_written() {
    assert_eq!(p("example.com").ports, PortSet::Default);
    assert!(PortSet::Default.matches(443, Protocol::HttpConnect));
    assert!(PortSet::Default.matches(443, Protocol::Socks5));
    assert!(PortSet::Default.matches(80, Protocol::HttpForward));
    assert!(!PortSet::Default.matches(80, Protocol::HttpConnect));
    assert!(!PortSet::Default.matches(443, Protocol::HttpForward));
    assert!(!PortSet::Default.matches(22, Protocol::Socks5));
}

#[test]
fn ports_single_lists_ranges_and_any() {
    assert_eq!(
        p("localhost:8080").ports,
        PortSet::Ranges(Box::new([(8080, 8080)]))
    );
    assert_eq!(
        p("example.com:80,443").ports,
        PortSet::Ranges(Box::new([(80, 80), (443, 443)]))
    );
    let range = p("example.com:8000-8999").ports;
    assert!(range.matches(8000, Protocol::HttpConnect));
    assert!(range.matches(8999, Protocol::HttpForward));
    assert!(!range.matches(9000, Protocol::HttpConnect));
    assert!(!range.matches(443, Protocol::HttpConnect));
    assert_eq!(p("example.com:*").ports, PortSet::Any);
    assert!(PortSet::Any.matches(1, Protocol::Socks5));
}

#[test]
fn bad_ports_are_rejected_with_a_hint() {
    for text in [
        "example.com:0",
        "example.com:65536",
        "example.com:http",
        "example.com:",
        "example.com:10-5",
    ] {
        let e = rejected(text);
        assert!(e.hint.is_some(), "{text:?}: {e:?}");
    }
    assert_eq!(
        rejected("example.com:10-5").hint.as_deref(),
        Some("write 5-10")
    );
}

#[test]
fn ip_entries_match_only_ip_literals() {
    let one = p("10.1.2.3");
    assert!(one.matches_host(&host("10.1.2.3")));
    assert!(one.matches_host(&host("0x0a.1.2.3")), "any IPv4 spelling");
    assert!(!one.matches_host(&host("10.1.2.4")));
    let net = p("10.0.0.0/8");
    assert!(net.matches_host(&host("10.200.0.1")));
    assert!(!net.matches_host(&host("11.0.0.1")));
    // A name never matches an address entry, even one that looks alike.
    assert!(!net.matches_host(&Host::Name("10.example".into())));
    let v6 = p("fd00::/8");
    assert!(v6.matches_host(&host("[fd12::1]")));
    assert!(!v6.matches_host(&host("[fe80::1]")));
    assert_eq!(
        p("[::1]:8080").host(),
        HostPattern::Ip("::1".parse().unwrap())
    );
    assert_eq!(
        p("[::1]:8080").ports,
        PortSet::Ranges(Box::new([(8080, 8080)]))
    );
    assert_eq!(p("::1").host(), HostPattern::Ip("::1".parse().unwrap()));
    // Host bits are dropped: 10.1.2.3/8 is 10.0.0.0/8.
    assert_eq!(
        p("10.1.2.3/8").host(),
        HostPattern::Net("10.0.0.0/8".parse().unwrap())
    );
}

#[test]
fn names_never_match_addresses_entries_and_back() {
    let name = p("localhost");
    assert!(!name.matches_host(&host("127.0.0.1")));
}

#[test]
fn a_lone_star_is_rejected() {
    let e = rejected("*");
    assert!(e.message.contains("allow everything"), "{e:?}");
    assert!(e.hint.as_deref().unwrap().contains("mode: report"));
}

#[test]
fn a_wildcard_over_a_top_level_domain_is_rejected() {
    for text in ["*.com", ".com", "*.io"] {
        let e = rejected(text);
        assert!(e.message.contains("top-level domain"), "{text:?}: {e:?}");
    }
}

#[test]
fn a_wildcard_inside_a_label_is_rejected() {
    for text in [
        "exa*mple.com",
        "*example.com",
        "api.*.example.com",
        "example.*",
        "**.example.com",
    ] {
        let e = rejected(text);
        assert!(
            e.message.contains("misplaced wildcard") || e.message.contains("invalid"),
            "{text:?}: {e:?}"
        );
    }
    assert!(rejected("exa*mple.com")
        .hint
        .unwrap()
        .contains("*.example.com"));
}

#[test]
fn urls_are_rejected_with_the_host_as_hint() {
    let e = rejected("https://github.com/org/repo");
    assert!(e.message.contains("is a URL"), "{e:?}");
    assert_eq!(
        e.hint.as_deref(),
        Some("write the host only: \"github.com\"")
    );
    assert!(rejected("github.com/path")
        .message
        .contains("neither a host nor a CIDR"));
}

#[test]
fn empty_labels_and_empty_entries_are_rejected() {
    for text in [
        "",
        "  ",
        "a..example.com",
        ".",
        "*.",
        "..example.com",
        "example..com:443",
    ] {
        rejected(text);
    }
}

#[test]
fn wildcards_over_addresses_are_rejected() {
    let e = rejected("*.10.0.0.1");
    assert!(e.hint.as_deref().unwrap().contains("CIDR"), "{e:?}");
}

#[test]
fn the_written_text_is_kept_for_logs() {
    assert_eq!(p("*.example.com:443").to_string(), "*.example.com:443");
}
