use super::*;

#[test]
fn urls_with_and_without_credentials() {
    let url = parse_upstream_url("http://alice:s%40cret@squid.corp.example:3128").unwrap();
    assert_eq!(url.kind, UpstreamKind::Http);
    assert_eq!(url.host, Host::Name("squid.corp.example".into()));
    assert_eq!(url.port, 3128);
    assert_eq!(url.user.as_deref(), Some("alice"));
    assert_eq!(url.password.as_ref().map(Secret::expose), Some("s@cret"));

    let url = parse_upstream_url("socks5://10.0.0.9").unwrap();
    assert_eq!(
        (url.kind, url.port, url.user),
        (UpstreamKind::Socks5, 1080, None)
    );
    assert_eq!(parse_upstream_url("http://[::1]:8080/").unwrap().port, 8080);
    assert_eq!(parse_upstream_url("http://proxy").unwrap().port, 3128);
    let url = parse_upstream_url("https://squid.corp.example").unwrap();
    assert_eq!(
        (url.kind, url.port, url.tls),
        (UpstreamKind::Http, 443, true)
    );
    assert!(!parse_upstream_url("http://proxy").unwrap().tls);
}

#[test]
fn bad_urls_are_refused_without_repeating_the_password() {
    for (text, expected) in [
        ("squid:3128", "is not a URL"),
        ("https://u:hunter2@squid:3128/x", "has no path"),
        ("ftp://u:hunter2@squid", "unknown scheme"),
        ("http://u:hunter2@squid:3128/path", "has no path"),
        ("http://u:hunter2@squid:0", "invalid port"),
        (
            "http://u:hunter2%zz@squid",
            "invalid %-escape in the password",
        ),
        ("http://:hunter2@squid", "empty user name"),
    ] {
        let (message, _) = parse_upstream_url(text).unwrap_err();
        assert!(message.contains(expected), "{text}: {message}");
        assert!(!message.contains("hunter2"), "{text}: {message}");
    }
}

#[test]
fn secrets_never_print() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
    let url = parse_upstream_url("http://bob:hunter2@squid:3128").unwrap();
    assert!(!format!("{url:?}").contains("hunter2"));
    assert_eq!(
        masked("http://bob:hunter2@squid:3128"),
        "http://bob:***@squid:3128"
    );
    assert_eq!(masked("http://bob@squid:3128"), "http://bob@squid:3128");
}

#[test]
fn routes_prefer_the_rule_then_direct_entries_then_the_default() {
    let upstream = |name: &str, fallback: &[&str]| Upstream {
        name: name.into(),
        kind: UpstreamKind::Http,
        host: Host::Name(format!("{name}.example").into()),
        port: 3128,
        user: None,
        password: None,
        password_file: None,
        fallback: fallback.iter().map(|s| s.to_string()).collect(),
        health_check: Duration::from_secs(5),
        tls: None,
        negotiate: None,
    };
    let routing = Routing {
        upstreams: vec![upstream("backup", &[]), upstream("corp", &["backup"])],
        default: RouteChoice::Upstream("corp".into()),
        direct: vec![
            Pattern::parse(".internal.example").unwrap(),
            Pattern::parse("10.0.0.0/8").unwrap(),
        ],
    };
    let host = |h: &str| Host::parse(h).unwrap();
    assert_eq!(
        routing.choose(None, &host("github.com")),
        RouteChoice::Upstream("corp".into())
    );
    assert_eq!(
        routing.choose(None, &host("git.internal.example")),
        RouteChoice::Direct
    );
    assert_eq!(routing.choose(None, &host("10.1.2.3")), RouteChoice::Direct);
    assert_eq!(
        routing.choose(Some("direct"), &host("github.com")),
        RouteChoice::Direct
    );
    assert_eq!(
        routing.choose(Some("backup"), &host("x.internal.example")),
        RouteChoice::Upstream("backup".into())
    );
    let names: Vec<&str> = routing
        .chain("corp")
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(names, ["corp", "backup"]);
    assert_eq!(
        routing.upstream("corp").unwrap().display_url(),
        "http://corp.example:3128"
    );
}
