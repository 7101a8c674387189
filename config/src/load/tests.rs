use std::time::Duration;

use super::*;
use crate::admin::Role;
use crate::{Host, Protocol, Request};

fn err(text: &str) -> ConfigError {
    match load_str(text, "policy.yaml") {
        Err(e) => e,
        Ok(_) => panic!("should be rejected:\n{text}"),
    }
}

#[test]
fn the_issue_example_loads() {
    let config = load_str(
        "listen: 127.0.0.1:3128\nmode: enforce\nallow: [github.com, \"*.githubusercontent.com\", .crates.io, \"localhost:8080\"]\ndeny:  [evil.example.com]\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(
        config.listeners[0].address,
        "127.0.0.1:3128".parse().unwrap()
    );
    assert_eq!(config.listeners[0].protocols, ListenerProtocols::Mixed);
    assert_eq!(config.policy.mode(), Mode::Enforce);
    assert_eq!(config.policy.allow().len(), 4);
    assert_eq!(config.policy.deny().len(), 1);
    assert_eq!(config.source, "policy.yaml");
}

#[test]
fn a_blank_file_means_every_default_and_denies_everything() {
    let config = load_str("# nothing yet\n\n", "policy.yaml").unwrap();
    assert_eq!(config.listeners[0].address, DEFAULT_LISTEN);
    assert_eq!(config.policy.mode(), Mode::Enforce);
    assert!(config.policy.allow().is_empty());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.timeouts, Timeouts::default());
}

#[test]
fn the_embedded_default_loads_and_allows_the_documented_hosts() {
    let config = default_config();
    assert_eq!(config.source, "<embedded default>");
    assert_eq!(config.listeners[0].address, DEFAULT_LISTEN);
    assert_eq!(config.policy.mode(), Mode::Enforce);
    let texts: Vec<&str> = config.policy.allow().iter().map(|p| p.text()).collect();
    for expected in [
        "github.com",
        "crates.io",
        "registry.npmjs.org",
        "pypi.org",
        "api.anthropic.com",
    ] {
        assert!(
            texts.contains(&expected),
            "{expected} missing from {texts:?}"
        );
    }
}

#[test]
fn a_list_of_listeners_with_protocols() {
    let config = load_str(
        "listen:\n  - 127.0.0.1:3128\n  - socks5://127.0.0.1:1080\n  - http://[::1]:8080\n  - redirect://[::]:3129\n  - tproxy://0.0.0.0:3130\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 5);
    assert_eq!(config.listeners[4].protocols, ListenerProtocols::Tproxy);
    assert_eq!(config.listeners[3].protocols, ListenerProtocols::Redirect);
    assert_eq!(config.listeners[3].address, "[::]:3129".parse().unwrap());
    assert_eq!(config.listeners[0].protocols, ListenerProtocols::Mixed);
    assert_eq!(config.listeners[1].protocols, ListenerProtocols::Socks5);
    assert_eq!(config.listeners[2].protocols, ListenerProtocols::Http);
    assert_eq!(config.listeners[2].address, "[::1]:8080".parse().unwrap());
    let e = err("listen:\n  - 127.0.0.1:3128\n  - ftp://127.0.0.1:21\n");
    assert_eq!((e.line, e.path.as_str()), (Some(3), "listen[1]"));
}

#[test]
fn limits_and_timeouts_are_read_with_units() {
    let config = load_str(
        "limits:\n  max_connections: 100\n  max_request_head_bytes: 8192\ntimeouts:\n  dial: 2s\n  idle: 5m\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(config.limits.max_connections, 100);
    assert_eq!(config.limits.max_request_head_bytes, 8192);
    assert_eq!(config.timeouts.dial, Duration::from_secs(2));
    assert_eq!(config.timeouts.idle, Duration::from_secs(300));
}

#[test]
fn a_bad_pattern_names_line_column_path_and_hint() {
    let e = err("mode: enforce\nallow:\n  - github.com\n  - \"*.com\"\n");
    assert_eq!((e.line, e.column), (Some(4), Some(5)));
    assert_eq!(e.path, "allow[1]");
    assert!(e.message.contains("top-level domain"), "{e}");
    assert!(e.hint.is_some());
    assert!(
        e.to_string().starts_with("policy.yaml:4:5: at allow[1]: "),
        "{e}"
    );
}

#[test]
fn an_unknown_key_suggests_the_closest() {
    let e = err("timeouts:\n  idle: 1m\n  dail: 5s\n");
    assert_eq!((e.line, e.column), (Some(3), Some(3)));
    assert_eq!(e.hint.as_deref(), Some("did you mean `dial`?"));
    let e = err("alow: [github.com]\n");
    assert_eq!(e.line, Some(1));
    assert_eq!(e.hint.as_deref(), Some("did you mean `allow`?"));
}

#[test]
fn a_wrong_type_names_where() {
    let e = err("mode: enforce\nallow: 5\n");
    assert_eq!((e.line, e.column), (Some(2), Some(8)));
    assert_eq!(e.path, "allow");
    let e = err("limits:\n  max_connections: lots\n");
    assert_eq!(e.line, Some(2));
    assert_eq!(e.path, "limits.max_connections");
}

#[test]
fn an_unknown_mode_is_rejected() {
    let e = err("mode: audit\n");
    assert_eq!(e.line, Some(1));
    assert!(
        e.message.contains("enforce") && e.message.contains("report"),
        "{e}"
    );
}

#[test]
fn out_of_range_values_are_rejected() {
    assert_eq!(err("limits:\n  max_connections: 0\n").line, Some(2));
    assert_eq!(err("limits:\n  max_request_head_bytes: 10\n").line, Some(2));
    assert_eq!(err("timeouts:\n  dial: soon\n").line, Some(2));
    assert_eq!(err("listen: localhost\n").line, Some(1));
}

#[test]
fn broken_yaml_names_its_line() {
    let e = err("allow: [github.com\ndeny: []\n");
    assert!(e.line.is_some(), "{e}");
}

/// The keys the loader accepts at `prefix`, read from its own "unknown field" error, so this test
/// follows the code rather than a list kept by hand.
fn loader_keys(prefix: &str) -> Vec<String> {
    let text = format!("{prefix}no_such_key_zz: 1\n");
    let e = err(&text);
    // serde says "expected `a` or `b`" for two and "expected one of `a`, `b`, …" for more.
    let expected = e
        .message
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("{e}"));
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

fn schema_keys(node: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = node["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_listener_written_out_takes_the_proxy_protocol_from_trusted_peers_only() {
    let config = load_str(
        "listen:\n  - 127.0.0.1:3128\n  - {address: \"socks5://127.0.0.1:1080\", proxy_protocol: true, trusted: [10.0.0.0/8, 192.0.2.7]}\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(config.listeners[0].proxy_protocol, None);
    assert_eq!(config.listeners[1].protocols, ListenerProtocols::Socks5);
    let trusted = &config.listeners[1].proxy_protocol.as_ref().unwrap().trusted;
    assert_eq!(
        trusted,
        &[
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap()
        ]
    );
    // Alone, not in a list.
    let config = load_str(
        "listen: {address: 127.0.0.1:3128, proxy_protocol: true, trusted: [127.0.0.1]}\n",
        "p",
    )
    .unwrap();
    assert!(config.listeners[0].proxy_protocol.is_some());
    // Refused: believing anyone, a list of trusted peers for nothing, a bad network, an unknown
    // key, a bad address; each at its line.
    for (text, says) in [
        (
            "{address: 127.0.0.1:1, proxy_protocol: true}",
            "needs `trusted`",
        ),
        (
            "{address: 127.0.0.1:1, trusted: [10.0.0.0/8]}",
            "only for proxy_protocol",
        ),
        (
            "{address: 127.0.0.1:1, proxy_protocol: true, trusted: [nope]}",
            "invalid network",
        ),
        (
            "{address: \"redirect://127.0.0.1:1\", proxy_protocol: true, trusted: [10.0.0.0/8]}",
            "proxy_protocol is for listeners that proxy clients reach",
        ),
        (
            "{address: \"tproxy://127.0.0.1:1\", proxy_protocol: true, trusted: [10.0.0.0/8]}",
            "proxy_protocol is for listeners that proxy clients reach",
        ),
        ("{address: 127.0.0.1:1, proxy: true}", "unknown field"),
        (
            "{address: ftp://x, proxy_protocol: false}",
            "unknown listener scheme",
        ),
    ] {
        let e = err(&format!("listen:\n  - 127.0.0.1:3128\n  - {text}\n"));
        assert!(e.to_string().contains(says), "{text}: {e}");
        assert_eq!(e.line, Some(3), "{text}: {e}");
    }
}

#[test]
fn a_listeners_identity_must_be_configured() {
    let config = load_str(
        "listen:\n  - {address: \"127.0.0.1:1\", identity: build}\nidentities:\n  build: {}\n",
        "p",
    )
    .unwrap();
    assert_eq!(config.listeners[0].identity.as_deref(), Some("build"));
    let e = err("listen:\n  - {address: \"127.0.0.1:1\", identity: build}\n");
    assert!(
        e.to_string()
            .contains("identity \"build\" is not configured"),
        "{e}"
    );
    let e = err("listen:\n  - {address: \"127.0.0.1:1\", identity: anonymous}\n");
    assert!(e.to_string().contains("reserved"), "{e}");
}

#[test]
fn the_json_schema_names_exactly_the_keys_the_loader_accepts() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../policy.schema.json")).expect("schema is JSON");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema_keys(&schema), loader_keys(""));
    for section in [
        "limits",
        "timeouts",
        "dns",
        "address_guard",
        "tls",
        "route",
        "audit",
        "auth",
    ] {
        let node = &schema["properties"][section];
        assert_eq!(node["additionalProperties"], false, "{section}");
        assert_eq!(
            schema_keys(node),
            loader_keys(&format!("{section}:\n  ")),
            "{section}"
        );
    }
    let listener = &schema["$defs"]["listener"]["oneOf"][1];
    assert_eq!(listener["additionalProperties"], false);
    assert_eq!(
        schema_keys(listener),
        loader_keys("listen:\n  - address: 127.0.0.1:1\n    ")
    );
    let upstream = &schema["properties"]["upstreams"]["additionalProperties"];
    assert_eq!(
        schema_keys(upstream),
        loader_keys("upstreams:\n  corp:\n    ")
    );
    // Documented defaults agree with the code's.
    let limits = &schema["properties"]["limits"]["properties"];
    assert_eq!(
        limits["max_connections"]["default"],
        Limits::default().max_connections
    );
    assert_eq!(
        limits["max_request_head_bytes"]["default"],
        Limits::default().max_request_head_bytes
    );
    let timeouts = &schema["properties"]["timeouts"]["properties"];
    let defaults = load_str("", "x").unwrap().timeouts;
    for (key, value) in [
        ("request_head", defaults.request_head),
        ("handshake", defaults.handshake),
        ("dial", defaults.dial),
        ("idle", defaults.idle),
        ("shutdown_grace", defaults.shutdown_grace),
    ] {
        let written = timeouts[key]["default"].as_str().unwrap();
        let timeouts = load_str(&format!("timeouts:\n  {key}: {written}\n"), "x")
            .unwrap()
            .timeouts;
        let parsed = match key {
            "request_head" => timeouts.request_head,
            "handshake" => timeouts.handshake,
            "dial" => timeouts.dial,
            "idle" => timeouts.idle,
            _ => timeouts.shutdown_grace,
        };
        assert_eq!(parsed, value, "default of timeouts.{key}");
    }
    let modes: Vec<&str> = schema["properties"]["mode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for mode in &modes {
        load_str(&format!("mode: {mode}\n"), "x").unwrap();
    }
}

#[test]
fn destination_safety_settings_are_read() {
    let config = load_str(
        "dns:\n  nameservers: [10.0.0.2, \"127.0.0.1:5353\"]\n  timeout: 2s\n  cache_size: 10\n\
         address_guard:\n  allow_networks: [10.20.0.0/16, 192.168.1.7]\n\
         tls:\n  sni: policy\n  without_sni: refuse\n  ports: [443, 8443]\n\
         limits:\n  max_connections_per_client: 8\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(
        config.dns.nameservers,
        Some(vec![
            "10.0.0.2:53".parse().unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        ])
    );
    assert_eq!(config.dns.timeout, Duration::from_secs(2));
    assert_eq!(config.dns.cache_size, 10);
    assert!(config.address_guard.enabled);
    assert_eq!(
        config.address_guard.allow_networks,
        vec![
            "10.20.0.0/16".parse().unwrap(),
            "192.168.1.7/32".parse().unwrap()
        ]
    );
    assert_eq!(config.tls.sni, crate::SniCheck::Policy);
    assert_eq!(config.tls.without_sni, crate::WithoutSni::Refuse);
    assert_eq!(config.tls.ports, vec![443, 8443]);
    assert_eq!(config.limits.max_connections_per_client, 8);
}

#[test]
fn destination_safety_defaults_are_safe() {
    let config = load_str("", "policy.yaml").unwrap();
    assert!(config.address_guard.enabled);
    assert!(config.address_guard.allow_networks.is_empty());
    assert_eq!(config.dns.nameservers, None);
    assert_eq!(config.tls.sni, crate::SniCheck::Match);
    assert_eq!(config.tls.without_sni, crate::WithoutSni::ExplicitIp);
    assert_eq!(config.tls.ports, vec![443]);
}

#[test]
fn bad_destination_safety_values_name_their_place() {
    let e = err("dns:\n  nameservers: [resolver.example]\n");
    assert_eq!((e.line, e.path.as_str()), (Some(2), "dns.nameservers[0]"));
    assert!(e.hint.is_some());
    let e = err("address_guard:\n  allow_networks: [10.0.0.0/33]\n");
    assert_eq!(
        (e.line, e.path.as_str()),
        (Some(2), "address_guard.allow_networks[0]")
    );
    let e = err("tls:\n  sni: strict\n");
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("match"), "{e}");
}

#[test]
fn an_error_at_the_end_of_a_file_without_a_final_newline_points_inside_the_file() {
    // Found by the `policy_load` fuzz target: the parser reported line 3 of a 2-line file.
    let e = err("limits:\n  max_connections: 9\n  max_from trh");
    assert_eq!((e.line, e.column), (Some(3), Some(15)), "{e}");
    // Lone CRs are line breaks to YAML, and so to the position.
    let e = err("limits:\r  max_connections: 9\r  max_from trh");
    assert_eq!((e.line, e.column), (Some(3), Some(15)), "{e}");
}

const CHAINED: &str = "\
upstreams:
  corp:
    url: http://egress@squid.corp.example:3128
    password_env: EGRESS_TEST_CORP_PASSWORD
    fallback: [corp-backup]
  corp-backup:
    url: socks5://10.9.9.9
    health_check: 2s
route:
  default: corp
  direct: [.internal.example, 10.0.0.0/8]
allow:
  - github.com
  - { host: .eu.example.com, via: corp-backup }
  - { host: intranet.example.com, via: direct }
";

#[test]
fn the_issue_upstream_example_loads_with_its_routes() {
    std::env::set_var("EGRESS_TEST_CORP_PASSWORD", "hunter2");
    let config = load_str(CHAINED, "policy.yaml").unwrap();
    let routing = &config.routing;
    let corp = routing.upstream("corp").unwrap();
    assert_eq!(corp.display_url(), "http://egress@squid.corp.example:3128");
    assert_eq!(corp.password.as_ref().map(|p| p.expose()), Some("hunter2"));
    assert_eq!(corp.fallback, ["corp-backup"]);
    assert_eq!(corp.health_check, std::time::Duration::from_secs(5));
    let backup = routing.upstream("corp-backup").unwrap();
    assert_eq!(
        (backup.kind, backup.port),
        (crate::UpstreamKind::Socks5, 1080)
    );
    assert!(
        !format!("{config:?}").contains("hunter2"),
        "password in Debug output"
    );
    let decide = |host: &str| {
        let host = Host::parse(host).unwrap();
        let verdict = config.policy.decide(&Request {
            host: &host,
            port: 443,
            protocol: Protocol::HttpConnect,
        });
        routing.choose(verdict.via, &host)
    };
    assert_eq!(
        decide("github.com"),
        crate::RouteChoice::Upstream("corp".into())
    );
    assert_eq!(
        decide("a.eu.example.com"),
        crate::RouteChoice::Upstream("corp-backup".into())
    );
    assert_eq!(decide("intranet.example.com"), crate::RouteChoice::Direct);
}

#[test]
fn upstream_mistakes_are_named_precisely() {
    std::env::set_var("EGRESS_TEST_SET_PASSWORD", "x");
    for (text, path, message) in [
        ("upstreams:\n  corp:\n    url: squid:3128\n", "upstreams.corp.url", "is not a URL"),
        ("upstreams:\n  Corp:\n    url: http://s\n", "upstreams.Corp", "invalid upstream name"),
        ("upstreams:\n  direct:\n    url: http://s\n", "upstreams.direct", "reserved"),
        (
            "upstreams:\n  corp:\n    url: http://s\n    fallback: [nope]\n",
            "upstreams.corp.fallback[0]",
            "not another defined upstream",
        ),
        (
            "upstreams:\n  corp:\n    url: http://s\n    fallback: [corp]\n",
            "upstreams.corp.fallback[0]",
            "not another defined upstream",
        ),
        ("route:\n  default: corp\n", "route.default", "unknown upstream \"corp\""),
        ("allow:\n  - { host: a.example, via: corp }\n", "allow[0].via", "unknown upstream"),
        ("allow:\n  - { host: a.example, by: corp }\n", "allow[0].by", "unknown field `by`"),
        (
            "upstreams:\n  corp:\n    url: http://u@s\n    password_env: EGRESS_TEST_UNSET_VAR_XYZ\n",
            "upstreams.corp.password_env",
            "is not set",
        ),
        (
            "upstreams:\n  corp:\n    url: http://u:secret1@s\n    password_env: EGRESS_TEST_SET_PASSWORD\n",
            "upstreams.corp",
            "more than once",
        ),
        (
            "upstreams:\n  corp:\n    url: http://s\n    password_env: EGRESS_TEST_SET_PASSWORD\n",
            "upstreams.corp.url",
            "needs a user name",
        ),
        (
            "upstreams:\n  corp:\n    url: http://u@s\n    password_file: /nonexistent/egress-pw\n",
            "upstreams.corp.password_file",
            "cannot read password file",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.path, path, "{text}\n{e}");
        assert!(e.message.contains(message), "{text}\n{e}");
        assert!(!e.to_string().contains("secret1"), "{e}");
    }
}

#[test]
fn secrets_are_read_only_once_the_whole_file_is_valid() {
    // Each file names a secret that cannot be read and also has a mistake of its own: the
    // mistake is reported, found before any secret is looked at (by serde, or by the checks
    // after it), wherever in the file it is.
    for (text, path) in [
        (
            "upstreams:\n  corp:\n    url: http://u@s\n    password_env: EGRESS_TEST_UNSET_VAR_XYZ\nallow:\n  - \"exa*mple.com\"\n",
            "allow[0]",
        ),
        (
            "upstreams:\n  corp:\n    url: http://s\n    password_env: EGRESS_TEST_UNSET_VAR_XYZ\n",
            "upstreams.corp.url",
        ),
        (
            "upstreams:\n  corp:\n    url: http://u@s\n    password_file: /nonexistent/egress-pw\n    fallback: [nope]\n",
            "upstreams.corp.fallback[0]",
        ),
        (
            "upstreams:\n  corp:\n    url: http://u@s\n    password_file: /nonexistent/egress-pw\nroute:\n  default: elsewhere\n",
            "route.default",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.path, path, "{text}\n{e}");
    }
}

#[test]
fn an_unreadable_secret_is_named_by_its_source_and_its_value_never_shows() {
    let file = std::env::temp_dir().join(format!("egress-pw-empty-{}", std::process::id()));
    std::fs::write(&file, "\n").unwrap();
    let text = format!(
        "upstreams:\n  corp:\n    url: http://u@s\n    password_file: {}\n",
        file.display()
    );
    let e = err(&text);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(e.path, "upstreams.corp.password_file", "{e}");
    assert!(e.message.contains("is empty"), "{e}");
    // A variable that is set is read: its value appears in neither the Debug output of what was
    // loaded nor an error about another upstream of the same file.
    std::env::set_var("EGRESS_TEST_SECRET_VALUE", "hunter3-value");
    let text =
        "upstreams:\n  a:\n    url: http://u@s\n    password_env: EGRESS_TEST_SECRET_VALUE\n  \
                b:\n    url: http://u@t\n    password_env: EGRESS_TEST_UNSET_VAR_XYZ\n";
    let e = err(text);
    assert_eq!(e.path, "upstreams.b.password_env", "{e}");
    assert!(!format!("{e} {e:?}").contains("hunter3"), "{e:?}");
    let config = load_str(&text[..text.find("  b:").unwrap()], "x").unwrap();
    assert!(!format!("{config:?}").contains("hunter3"));
    let a = config.routing.upstream("a").unwrap();
    assert_eq!(
        a.password.as_ref().map(|p| p.expose()),
        Some("hunter3-value")
    );
}

#[test]
fn a_password_file_is_read_without_its_newline() {
    let dir = std::env::temp_dir().join(format!("egress-pw-{}", std::process::id()));
    std::fs::write(&dir, "s3cret\n").unwrap();
    let text = format!(
        "upstreams:\n  corp:\n    url: http://egress@s\n    password_file: {}\n",
        dir.display()
    );
    let config = load_str(&text, "x").unwrap();
    std::fs::remove_file(&dir).unwrap();
    let corp = config.routing.upstream("corp").unwrap();
    assert_eq!(corp.password.as_ref().map(|p| p.expose()), Some("s3cret"));
}

#[test]
fn admin_and_audit_load_and_admin_stays_on_loopback() {
    let config = load_str("admin: 127.0.0.1:9090\naudit: { path: \"-\" }\n", "x").unwrap();
    let admin = config.admin.unwrap();
    assert_eq!(
        (admin.listen.port(), admin.blocked_domains_cap),
        (9090, 1000)
    );
    assert_eq!(config.audit.unwrap().path, None);
    let config = load_str(
        "admin: { listen: \"[::1]:9100\", blocked_domains_cap: 50 }\naudit: { path: /var/log/egress.jsonl, buffer: 100 }\n",
        "x",
    )
    .unwrap();
    assert_eq!(config.admin.unwrap().blocked_domains_cap, 50);
    let audit = config.audit.unwrap();
    assert_eq!(
        (audit.path.unwrap().to_str().unwrap(), audit.buffer),
        ("/var/log/egress.jsonl", 100)
    );
    assert!(load_str("", "x").unwrap().admin.is_none());
    let e = err("admin: 0.0.0.0:9090\n");
    assert_eq!((e.line, e.path.as_str()), (Some(1), "admin"));
    assert!(e.message.contains("must be on loopback"), "{e}");
    let e = err("admin: { listen: 10.0.0.1:9090 }\n");
    assert!(e.message.contains("must be on loopback"), "{e}");
}

#[test]
fn admin_console_keys_load_and_tokens_come_from_files_or_variables() {
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("alice.token");
    std::fs::write(&alice, "alice-0123456789abcdef\n").unwrap();
    std::env::set_var("EGRESS_TEST_BOT_TOKEN", "bot-0123456789abcdef");
    let text = format!(
        "admin:\n  listen: 127.0.0.1:9090\n  token_file: /x/admin.token\n  events_ring: 50\n  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n    bot: {{ role: approver, token_env: EGRESS_TEST_BOT_TOKEN }}\n",
        alice.display()
    );
    let admin = load_str(&text, "x").unwrap().admin.unwrap();
    assert_eq!(admin.events_ring, 50);
    assert_eq!(admin.token_file.unwrap().to_str(), Some("/x/admin.token"));
    let tokens: Vec<_> = admin
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.role, t.token.expose()))
        .collect();
    assert_eq!(
        tokens,
        [
            ("alice", Role::Viewer, "alice-0123456789abcdef"),
            ("bot", Role::Approver, "bot-0123456789abcdef")
        ]
    );
    // Defaults.
    let admin = load_str("admin: 127.0.0.1:9090\n", "x")
        .unwrap()
        .admin
        .unwrap();
    assert_eq!(
        (admin.events_ring, admin.allow_remote, admin.tokens.len()),
        (crate::admin::DEFAULT_EVENTS_RING, false, 0)
    );
}

#[test]
fn admin_tokens_that_are_inline_short_shared_or_misnamed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "tooshort\n").unwrap();
    let long = dir.path().join("long");
    std::fs::write(&long, "0123456789abcdef0123\n").unwrap();
    let cases = [
        // The token itself in the file: there is no key for it.
        ("tokens: { a: { role: viewer, token: x } }".to_string(), "unknown field"),
        ("tokens: { a: { role: viewer } }".to_string(), "exactly one of"),
        (format!("tokens: {{ a: {{ role: viewer, token_file: {} }} }}", short.display()), "shorter than 16"),
        (format!("tokens: {{ a: {{ role: viewer, token_file: {0} }}, b: {{ role: admin, token_file: {0} }} }}", long.display()), "same as token"),
        (format!("tokens: {{ admin: {{ role: viewer, token_file: {} }} }}", long.display()), "admin token's"),
        (format!("tokens: {{ a: {{ role: root, token_file: {} }} }}", long.display()), "unknown variant"),
        ("tokens: { a: { role: viewer, token_env: EGRESS_TEST_UNSET_TOKEN } }".to_string(), "not set"),
    ];
    for (tokens, expected) in cases {
        let e = err(&format!("admin: {{ listen: 127.0.0.1:9090, {tokens} }}\n"));
        assert!(e.to_string().contains(expected), "{tokens}: {e}");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }
}

#[test]
fn tls_and_kerberos_parents_load() {
    let text = "upstreams:\n  tls:\n    url: https://squid.corp.example:3129\n    ca_file: /etc/corp-ca.pem\n    client_cert: /etc/egress.pem\n    client_key: /etc/egress.key\n  krb:\n    url: http://squid.corp.example:3128\n    auth: negotiate\n    keytab: /etc/egress.keytab\n  krb2:\n    url: https://squid2.corp.example\n    auth: negotiate\n    principal: HTTP@proxy.corp.example\n";
    let config = load_str(text, "x").unwrap();
    let tls = config.routing.upstream("tls").unwrap();
    let parent_tls = tls.tls.as_ref().unwrap();
    assert_eq!(
        parent_tls.ca_file.as_deref(),
        Some("/etc/corp-ca.pem".as_ref())
    );
    assert!(parent_tls.client_key.is_some() && tls.negotiate.is_none());
    assert_eq!(tls.display_url(), "https://squid.corp.example:3129");
    let krb = config.routing.upstream("krb").unwrap();
    let negotiate = krb.negotiate.as_ref().unwrap();
    assert!(krb.tls.is_none());
    assert_eq!(negotiate.service(&krb.host), "HTTP@squid.corp.example");
    assert_eq!(
        negotiate.keytab.as_deref(),
        Some("/etc/egress.keytab".as_ref())
    );
    let krb2 = config.routing.upstream("krb2").unwrap();
    assert_eq!(
        krb2.negotiate.as_ref().unwrap().service(&krb2.host),
        "HTTP@proxy.corp.example"
    );
    assert_eq!(krb2.port, 443);
    assert!(krb2.tls.is_some());
}

#[test]
fn tls_and_kerberos_keys_that_do_not_fit_are_refused() {
    for (text, path, message) in [
        (
            "upstreams:\n  c:\n    url: http://s\n    ca_file: /ca.pem\n",
            "upstreams.c.ca_file",
            "needs an https:// parent",
        ),
        (
            "upstreams:\n  c:\n    url: https://s\n    client_cert: /c.pem\n",
            "upstreams.c.client_key",
            "go together",
        ),
        (
            "upstreams:\n  c:\n    url: https://s\n    client_key: /c.key\n",
            "upstreams.c.client_cert",
            "go together",
        ),
        (
            "upstreams:\n  c:\n    url: http://s\n    keytab: /k\n",
            "upstreams.c.keytab",
            "for Kerberos parents",
        ),
        (
            "upstreams:\n  c:\n    url: socks5://s\n    auth: negotiate\n",
            "upstreams.c.auth",
            "SOCKS5 parent cannot",
        ),
        (
            "upstreams:\n  c:\n    url: http://u:secret1@s\n    auth: negotiate\n",
            "upstreams.c.auth",
            "no user name or password",
        ),
        (
            "upstreams:\n  c:\n    url: http://s\n    auth: basic\n",
            "upstreams.c.auth",
            "needs a user name",
        ),
        (
            "upstreams:\n  c:\n    url: http://s\n    auth: negotiate\n    principal: HTTP/s@REALM\n",
            "upstreams.c.principal",
            "not a GSSAPI service name",
        ),
        (
            "upstreams:\n  c:\n    url: http://s\n    auth: ntlm\n",
            "upstreams.c.auth",
            "unknown variant",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.path, path, "{text}\n{e}");
        assert!(e.message.contains(message), "{text}\n{e}");
        assert!(!e.to_string().contains("secret1"), "{e}");
    }
}

#[test]
fn a_remote_admin_address_needs_allow_remote() {
    let e = err("admin: { listen: 0.0.0.0:9090 }\n");
    assert!(e.message.contains("must be on loopback"), "{e}");
    let e = err("admin: { listen: 0.0.0.0:9090, allow_remote: false }\n");
    assert!(e.message.contains("must be on loopback"), "{e}");
    let admin = load_str("admin: { listen: 0.0.0.0:9090, allow_remote: true }\n", "x")
        .unwrap()
        .admin
        .unwrap();
    assert!(admin.allow_remote);
}

#[test]
fn check_names_the_files_and_the_service_but_nothing_in_them() {
    let text = "upstreams:\n  krb:\n    url: https://squid.corp.example:3129\n    ca_file: /etc/corp-ca.pem\n    client_cert: /etc/egress.pem\n    client_key: /etc/egress.key\n    auth: negotiate\n    keytab: /etc/egress.keytab\n";
    let config = load_str(text, "x").unwrap();
    let krb = config.routing.upstream("krb").unwrap();
    assert_eq!(
        crate::upstream::secure::summary(krb),
        ", TLS trusting system roots + /etc/corp-ca.pem, client certificate /etc/egress.pem, \
         Kerberos for HTTP@squid.corp.example from keytab /etc/egress.keytab"
    );
}
