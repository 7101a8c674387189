use super::*;
use crate::{Host, Protocol};

fn policy(mode: Mode, allow: &[&str], deny: &[&str]) -> Policy {
    let parse = |list: &[&str]| list.iter().map(|t| Pattern::parse(t).unwrap()).collect();
    Policy::new(mode, parse(allow), parse(deny))
}

fn ask(policy: &Policy, host: &str, port: u16, protocol: Protocol) -> (Action, Option<String>) {
    let host = Host::parse(host).unwrap();
    let verdict = policy.decide(&Request {
        host: &host,
        port,
        protocol,
    });
    (verdict.action, verdict.rule.map(str::to_string))
}

const CONNECT: Protocol = Protocol::HttpConnect;
const FORWARD: Protocol = Protocol::HttpForward;
const SOCKS: Protocol = Protocol::Socks5;

#[test]
fn what_matches_nothing_is_denied() {
    let p = policy(Mode::Enforce, &["github.com"], &[]);
    assert_eq!(
        ask(&p, "example.org", 443, CONNECT),
        (Action::Deny(DenyReason::NotAllowlisted), None)
    );
}

#[test]
fn an_allowed_host_on_its_default_port_passes_and_names_the_rule() {
    let p = policy(Mode::Enforce, &["example.com", ".github.com"], &[]);
    assert_eq!(
        ask(&p, "api.github.com", 443, CONNECT),
        (Action::Allow, Some(".github.com".into()))
    );
    assert_eq!(ask(&p, "api.github.com", 443, SOCKS).0, Action::Allow);
    assert_eq!(ask(&p, "example.com", 80, FORWARD).0, Action::Allow);
}

#[test]
fn other_ports_must_be_named() {
    let p = policy(Mode::Enforce, &["example.com"], &[]);
    let refused = (
        Action::Deny(DenyReason::PortNotAllowed),
        Some("example.com".into()),
    );
    assert_eq!(ask(&p, "example.com", 22, CONNECT), refused);
    assert_eq!(
        ask(&p, "example.com", 80, CONNECT),
        refused,
        "80 is the default of plain HTTP only"
    );
    assert_eq!(
        ask(&p, "example.com", 443, FORWARD),
        refused,
        "443 is the default of tunnels only"
    );
    let p = policy(Mode::Enforce, &["example.com", "example.com:22"], &[]);
    assert_eq!(
        ask(&p, "example.com", 22, SOCKS),
        (Action::Allow, Some("example.com:22".into()))
    );
}

#[test]
fn a_dns_question_is_answered_for_a_name_allowed_on_any_port_and_not_denied_on_all() {
    let dns = Protocol::Dns;
    let p = policy(
        Mode::Enforce,
        &["web.example", "ssh.example:22", "both.example"],
        &["both.example:22", ".bad.example"],
    );
    assert_eq!(ask(&p, "web.example", 53, dns).0, Action::Allow);
    assert_eq!(ask(&p, "ssh.example", 53, dns).0, Action::Allow);
    // Denied on one port only: still answered (443 is allowed).
    assert_eq!(ask(&p, "both.example", 53, dns).0, Action::Allow);
    assert_eq!(
        ask(&p, "x.bad.example", 53, dns).0,
        Action::Deny(DenyReason::BlockedByDenylist)
    );
    assert_eq!(
        ask(&p, "other.example", 53, dns).0,
        Action::Deny(DenyReason::NotAllowlisted)
    );
}

#[test]
fn an_intercepted_connection_gets_both_default_ports() {
    let p = policy(Mode::Enforce, &["example.com"], &[]);
    let transparent = Protocol::Transparent;
    assert_eq!(ask(&p, "example.com", 443, transparent).0, Action::Allow);
    assert_eq!(ask(&p, "example.com", 80, transparent).0, Action::Allow);
    assert_eq!(
        ask(&p, "example.com", 22, transparent).0,
        Action::Deny(DenyReason::PortNotAllowed)
    );
}

#[test]
fn deny_wins_over_allow() {
    let p = policy(Mode::Enforce, &[".example.com"], &["evil.example.com"]);
    let denied = (
        Action::Deny(DenyReason::BlockedByDenylist),
        Some("evil.example.com".into()),
    );
    assert_eq!(ask(&p, "evil.example.com", 443, CONNECT), denied);
    assert_eq!(ask(&p, "good.example.com", 443, CONNECT).0, Action::Allow);
}

#[test]
fn a_deny_entry_without_port_covers_every_port() {
    let p = policy(
        Mode::Enforce,
        &["evil.example.com:*"],
        &["evil.example.com"],
    );
    for port in [22, 80, 443, 8080] {
        assert_eq!(
            ask(&p, "evil.example.com", port, CONNECT).0,
            Action::Deny(DenyReason::BlockedByDenylist)
        );
    }
}

#[test]
fn a_deny_entry_with_ports_covers_only_those() {
    let p = policy(Mode::Enforce, &["example.com:*"], &["example.com:25"]);
    assert_eq!(
        ask(&p, "example.com", 25, CONNECT).0,
        Action::Deny(DenyReason::BlockedByDenylist)
    );
    assert_eq!(ask(&p, "example.com", 587, CONNECT).0, Action::Allow);
}

#[test]
fn the_earliest_matching_allow_entry_is_the_rule() {
    let p = policy(
        Mode::Enforce,
        &["*.example.com", "api.example.com", ".example.com"],
        &[],
    );
    assert_eq!(
        ask(&p, "api.example.com", 443, CONNECT).1.as_deref(),
        Some("*.example.com")
    );
    assert_eq!(
        ask(&p, "example.com", 443, CONNECT).1.as_deref(),
        Some(".example.com")
    );
}

#[test]
fn report_mode_lets_through_what_it_would_deny_and_says_why() {
    let p = policy(Mode::Report, &["github.com"], &["evil.example.com"]);
    assert_eq!(ask(&p, "github.com", 443, CONNECT).0, Action::Allow);
    assert_eq!(
        ask(&p, "example.org", 443, CONNECT).0,
        Action::Report(DenyReason::NotAllowlisted)
    );
    assert_eq!(
        ask(&p, "github.com", 22, CONNECT).0,
        Action::Report(DenyReason::PortNotAllowed)
    );
    assert_eq!(
        ask(&p, "evil.example.com", 443, CONNECT).0,
        Action::Report(DenyReason::BlockedByDenylist)
    );
}

#[test]
fn address_entries_match_only_address_targets() {
    let p = policy(Mode::Enforce, &["127.0.0.1:8080", "10.0.0.0/8:*"], &[]);
    assert_eq!(
        ask(&p, "127.1", 8080, CONNECT).0,
        Action::Allow,
        "any spelling of the address"
    );
    assert_eq!(
        ask(&p, "[::ffff:127.0.0.1]", 8080, CONNECT).0,
        Action::Allow,
        "IPv4-mapped IPv6"
    );
    assert_eq!(
        ask(&p, "localhost", 8080, CONNECT).0,
        Action::Deny(DenyReason::NotAllowlisted)
    );
    assert_eq!(ask(&p, "10.9.8.7", 5432, SOCKS).0, Action::Allow);
}

#[test]
fn many_entries_still_decide_by_the_rules() {
    // Exercises the index with more than a handful of entries and shared suffixes.
    let allow: Vec<String> = (0..500).map(|i| format!("host{i}.example.com")).collect();
    let allow: Vec<&str> = allow
        .iter()
        .map(String::as_str)
        .chain([".shared.example.com"])
        .collect();
    let p = policy(Mode::Enforce, &allow, &["host7.example.com"]);
    assert_eq!(
        ask(&p, "host499.example.com", 443, CONNECT).0,
        Action::Allow
    );
    assert_eq!(
        ask(&p, "host7.example.com", 443, CONNECT).0,
        Action::Deny(DenyReason::BlockedByDenylist)
    );
    assert_eq!(
        ask(&p, "host500.example.com", 443, CONNECT).0,
        Action::Deny(DenyReason::NotAllowlisted)
    );
    assert_eq!(
        ask(&p, "a.b.shared.example.com", 443, CONNECT).0,
        Action::Allow
    );
}

#[test]
fn ask_mode_holds_only_what_no_entry_decides() {
    let p = policy(Mode::Ask, &["github.com"], &["evil.example.com"]);
    assert_eq!(ask(&p, "github.com", 443, CONNECT).0, Action::Allow);
    assert_eq!(
        ask(&p, "example.org", 443, CONNECT).0,
        Action::Ask(DenyReason::NotAllowlisted)
    );
    assert_eq!(
        ask(&p, "github.com", 22, SOCKS).0,
        Action::Ask(DenyReason::PortNotAllowed)
    );
    assert_eq!(
        ask(&p, "evil.example.com", 443, CONNECT).0,
        Action::Deny(DenyReason::BlockedByDenylist),
        "a deny entry is never asked"
    );
    let asked = Host::parse("example.org").unwrap();
    let verdict = p.decide(&Request {
        host: &asked,
        port: 443,
        protocol: CONNECT,
    });
    assert!(verdict.permits() && verdict.asks());
    assert_eq!(verdict.decision(), "ask");
}

#[test]
fn the_strictest_mode_is_enforce_then_ask_then_report() {
    use Mode::*;
    for (a, b, s) in [
        (Enforce, Ask, Enforce),
        (Ask, Report, Ask),
        (Report, Ask, Ask),
        (Report, Report, Report),
        (Ask, Ask, Ask),
    ] {
        assert_eq!(a.strictest(b), s, "{a:?} {b:?}");
    }
}
