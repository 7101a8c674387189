use crate::{load_str, Action, Host, Protocol, Request};

const POLICY: &str = "\
mode: enforce
allow: [base.example]
deny: [evil.example]
identities:
  alice: {groups: [web]}
  bob: {groups: [web, ci]}
  carol: {groups: [ci], mode: enforce}
  ci-runner: {networks: [198.18.0.0/15], groups: [ci]}
  one-box: {networks: [198.18.7.7]}
groups:
  web: {allow: [.npmjs.org], deny: [bad.npmjs.org]}
  ci: {allow: [pypi.org], deny: [base.example], mode: report}
";

fn decide(config: &crate::Config, who: &str, host: &str) -> Action {
    let host = Host::parse(host).unwrap();
    config
        .policy_for(who)
        .decide(&Request {
            host: &host,
            port: 443,
            protocol: Protocol::HttpConnect,
        })
        .action
}

#[test]
fn allow_lists_add_up_and_any_deny_wins() {
    use crate::DenyReason::*;
    let config = load_str(POLICY, "p.yaml").unwrap();
    // Base allow applies to everyone, groups add theirs.
    assert_eq!(decide(&config, "alice", "base.example"), Action::Allow);
    assert_eq!(
        decide(&config, "alice", "registry.npmjs.org"),
        Action::Allow
    );
    assert_eq!(
        decide(&config, "anonymous", "registry.npmjs.org"),
        Action::Deny(NotAllowlisted)
    );
    assert_eq!(
        decide(&config, "alice", "pypi.org"),
        Action::Deny(NotAllowlisted)
    );
    // A group's deny beats the group's own allow and the base allow.
    assert_eq!(
        decide(&config, "alice", "bad.npmjs.org"),
        Action::Deny(BlockedByDenylist)
    );
    // bob: web and ci; ci's deny of base.example wins over the base allow; modes: enforce
    // (web, the base mode) is stricter than report (ci).
    assert_eq!(
        decide(&config, "bob", "base.example"),
        Action::Deny(BlockedByDenylist)
    );
    assert_eq!(decide(&config, "bob", "pypi.org"), Action::Allow);
    assert_eq!(
        decide(&config, "bob", "other.example"),
        Action::Deny(NotAllowlisted)
    );
    // ci alone: report mode; the base deny still applies (reported).
    assert_eq!(
        decide(&config, "ci-runner", "other.example"),
        Action::Report(NotAllowlisted)
    );
    assert_eq!(
        decide(&config, "ci-runner", "evil.example"),
        Action::Report(BlockedByDenylist)
    );
    // carol sets her own mode: it beats her group's.
    assert_eq!(
        decide(&config, "carol", "other.example"),
        Action::Deny(NotAllowlisted)
    );
    // Unknown names get the base policy.
    assert_eq!(
        decide(&config, "nobody", "pypi.org"),
        Action::Deny(NotAllowlisted)
    );
}

#[test]
fn networks_pick_the_most_specific_identity() {
    let config = load_str(POLICY, "p.yaml").unwrap();
    let ids = &config.identities;
    let who = |ip: &str| ids.by_network(ip.parse().unwrap()).map(|n| n.to_string());
    assert_eq!(who("198.18.0.1").as_deref(), Some("ci-runner"));
    assert_eq!(who("198.19.255.254").as_deref(), Some("ci-runner"));
    assert_eq!(who("198.18.7.7").as_deref(), Some("one-box"));
    assert_eq!(who("::ffff:198.18.7.7").as_deref(), Some("one-box"));
    assert_eq!(who("198.20.0.1"), None);
    assert_eq!(who("127.0.0.1"), None);
    assert_eq!(
        ids.names(),
        ["alice", "bob", "carol", "ci-runner", "one-box"]
    );
}

#[test]
fn identity_errors_name_the_place() {
    let cases = [
        (
            "identities:\n  alice: {groups: [nope]}\n",
            "identities.alice.groups[0]",
            "unknown group",
        ),
        ("identities:\n  anonymous: {}\n", "identities", "reserved"),
        (
            "identities:\n  \"a b\": {}\n",
            "identities",
            "invalid identity name",
        ),
        (
            "identities:\n  a: {networks: [10.0.0.0/8]}\n  b: {networks: [10.1.2.3/8]}\n",
            "identities.b.networks[0]",
            "also a's network",
        ),
        ("auth: {realm: 'a\"b'}\n", "auth.realm", "invalid realm"),
        (
            "auth: {users_file: /nonexistent/users}\n",
            "auth.users_file",
            "cannot read the users file",
        ),
        (
            "groups:\n  web: {alow: []}\n",
            "groups.web",
            "unknown field",
        ),
    ];
    for (text, path, message) in cases {
        let error = load_str(text, "p.yaml").unwrap_err();
        assert!(error.path.starts_with(path), "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}

#[test]
fn a_broken_users_file_is_reported_at_its_line() {
    let dir = tempfile_dir();
    let users = dir.join("users");
    std::fs::write(&users, "# team\nalice:$apr1$x$y\n").unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "auth: {users_file: users, required: true}\n").unwrap();
    let error = crate::load_file(&policy).unwrap_err();
    assert_eq!(error.origin, users.display().to_string());
    assert_eq!(error.line, Some(2));
    assert!(error.message.contains("unsupported hash"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fresh directory under the system's temp dir (this crate has no tempfile dependency).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "egress-identity-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
