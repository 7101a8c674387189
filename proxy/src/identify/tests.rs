use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use egress_config::identity::hash_password;
use egress_config::{DenyReason, Identities};

use super::*;

fn identities(extra: &str) -> (tempfile::TempDir, Identities) {
    let dir = tempfile::tempdir().unwrap();
    let users = format!(
        "alice:{}\nbob:{}\n",
        hash_password(b"alice-pw", 4).unwrap(),
        hash_password(b"bob:pw", 4).unwrap()
    );
    std::fs::write(dir.path().join("users"), users).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("auth: {{users_file: users, realm: team}}\nidentities:\n  ci: {{networks: [10.9.0.0/16]}}\n{extra}"),
    )
    .unwrap();
    let config = egress_config::load_file(&policy).unwrap();
    (dir, config.identities)
}

fn basic(user_pass: &[u8]) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
    format!("Basic {token}").into_bytes()
}

const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn who(
    ids: &Identities,
    v: &Verifier,
    src: IpAddr,
    login: Option<(&str, &str)>,
) -> Result<String, Refusal> {
    let login = login.map(|(u, p)| Login::new(u.as_bytes(), p.as_bytes()));
    identify(ids, v, src, None, login)
        .await
        .map(|s| s.to_string())
}

#[tokio::test]
async fn the_listeners_identity_comes_after_login_and_network() {
    let (_dir, ids) = identities("  build: {}\n");
    let v = Verifier::default();
    let ci: IpAddr = "10.9.3.4".parse().unwrap();
    let on = |listener: &'static str, src: IpAddr, login: Option<(&'static str, &'static str)>| {
        let login = login.map(|(u, p)| Login::new(u.as_bytes(), p.as_bytes()));
        let (ids, v) = (&ids, &v);
        async move {
            identify(ids, v, src, Some(listener), login)
                .await
                .map(|s| s.to_string())
        }
    };
    assert_eq!(on("build", HOME, None).await.unwrap(), "build");
    assert_eq!(on("build", ci, None).await.unwrap(), "ci");
    assert_eq!(
        on("build", HOME, Some(("alice", "alice-pw")))
            .await
            .unwrap(),
        "alice"
    );
    // A listener identity a reload removed: nobody in particular.
    assert_eq!(on("gone", HOME, None).await.unwrap(), "anonymous");
}

#[tokio::test]
async fn logins_networks_and_anonymous_in_that_order() {
    let (_dir, ids) = identities("");
    let v = Verifier::default();
    let ci: IpAddr = "10.9.3.4".parse().unwrap();
    assert_eq!(
        who(&ids, &v, HOME, Some(("alice", "alice-pw")))
            .await
            .unwrap(),
        "alice"
    );
    // A password with a colon: only the first colon splits a Basic login.
    assert_eq!(
        who(&ids, &v, HOME, Some(("bob", "bob:pw"))).await.unwrap(),
        "bob"
    );
    // A login beats the network.
    assert_eq!(
        who(&ids, &v, ci, Some(("alice", "alice-pw")))
            .await
            .unwrap(),
        "alice"
    );
    assert_eq!(who(&ids, &v, ci, None).await.unwrap(), "ci");
    assert_eq!(who(&ids, &v, HOME, None).await.unwrap(), "anonymous");
}

#[tokio::test]
async fn wrong_logins_fail_even_when_not_required_and_name_the_realm() {
    let (_dir, ids) = identities("");
    let v = Verifier::default();
    let long = "a".repeat(10_000);
    for (user, pass) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("ALICE", "alice-pw"),
        ("carol", "alice-pw"),
        ("", ""),
        ("anonymous", ""),
        ("ci", ""),
        (long.as_str(), "x"),
        ("alice", long.as_str()),
    ] {
        let refusal = who(&ids, &v, "192.0.2.9".parse().unwrap(), Some((user, pass)))
            .await
            .unwrap_err();
        assert_eq!(refusal.reason, DenyReason::AuthFailed, "{user:.10}");
        assert_eq!(
            refusal.passed_on,
            [(
                "Proxy-Authenticate".to_string(),
                "Basic realm=\"team\"".to_string()
            )]
        );
    }
}

#[tokio::test]
async fn required_refuses_the_unrecognised_only() {
    let (_dir, ids) = identities("");
    let mut ids = ids;
    ids.auth.required = true;
    let v = Verifier::default();
    let refusal = who(&ids, &v, HOME, None).await.unwrap_err();
    assert_eq!(refusal.reason, DenyReason::AuthRequired);
    assert_eq!(
        who(&ids, &v, "10.9.0.1".parse().unwrap(), None)
            .await
            .unwrap(),
        "ci"
    );
    assert_eq!(
        who(&ids, &v, HOME, Some(("alice", "alice-pw")))
            .await
            .unwrap(),
        "alice"
    );
}

#[tokio::test]
async fn logins_are_ignored_without_a_users_file() {
    let config =
        egress_config::load_str("identities:\n  ci: {networks: [10.9.0.0/16]}\n", "p").unwrap();
    let v = Verifier::default();
    let ids = &config.identities;
    assert_eq!(
        who(ids, &v, HOME, Some(("x", "y"))).await.unwrap(),
        "anonymous"
    );
    assert_eq!(
        who(ids, &v, "10.9.0.1".parse().unwrap(), Some(("x", "y")))
            .await
            .unwrap(),
        "ci"
    );
}

#[tokio::test]
async fn a_verified_login_is_cached_and_a_wrong_password_is_not_served_from_it() {
    let (_dir, ids) = identities("");
    let v = Verifier::default();
    assert!(who(&ids, &v, HOME, Some(("alice", "alice-pw")))
        .await
        .is_ok());
    assert_eq!(v.lock_cache().len(), 1);
    // The cache keeps a digest only.
    let cached = format!("{:?}", v.lock_cache());
    assert!(!cached.contains("alice-pw"));
    assert!(who(&ids, &v, HOME, Some(("alice", "alice-pW")))
        .await
        .is_err());
    assert!(who(&ids, &v, HOME, Some(("alice", "alice-pw")))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_guessing_client_waits_longer_each_time_and_others_do_not() {
    let (_dir, ids) = identities("");
    let v = Verifier::default();
    let guesser: IpAddr = "192.0.2.66".parse().unwrap();
    for _ in 0..4 {
        assert!(who(&ids, &v, guesser, Some(("alice", "guess")))
            .await
            .is_err());
    }
    let started = std::time::Instant::now();
    assert!(who(&ids, &v, guesser, Some(("alice", "guess")))
        .await
        .is_err());
    assert!(
        started.elapsed() >= failures::delay(4),
        "{:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    assert!(who(&ids, &v, HOME, Some(("bob", "bob:pw"))).await.is_ok());
    assert!(
        started.elapsed() < failures::delay(4),
        "{:?}",
        started.elapsed()
    );
    let _ = Duration::ZERO;
}

#[test]
fn proxy_authorization_values() {
    let login = |v: &[u8]| from_header(&[v]);
    let ok = login(&basic(b"alice:pw")).unwrap().unwrap();
    assert_eq!(
        (ok.user.as_str(), ok.password.as_slice()),
        ("alice", &b"pw"[..])
    );
    let ok = login(&basic(b"u:")).unwrap().unwrap();
    assert_eq!((ok.user.as_str(), ok.password.as_slice()), ("u", &b""[..]));
    // Scheme names are case-insensitive; other schemes are no Basic login.
    assert!(login(b"bAsIc YTpi").unwrap().is_some());
    assert!(login(b"Negotiate YIIabc").unwrap().is_none());
    assert!(from_header(&[]).unwrap().is_none());
    for bad in [
        &b"Basic"[..],
        b"Basic !!!",
        b"Basic YWxpY2U=",
        b"Basic YTpi YTpi",
    ] {
        assert_eq!(
            login(bad).unwrap_err().reason,
            DenyReason::AuthFailed,
            "{bad:?}"
        );
    }
    let two = basic(b"a:b");
    assert!(from_header(&[&two, &two]).is_err());
    // Debug never shows the password.
    assert!(!format!("{ok:?}").contains("pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_arriving_together_are_checked_once() {
    let (_dir, ids) = identities("");
    let (ids, v) = (
        std::sync::Arc::new(ids),
        std::sync::Arc::new(Verifier::default()),
    );
    // The client's turn is held while the eight logins arrive, so all of them miss the cache
    // and queue: only the re-check after the turn can spare the seven the hash.
    let held = v.failures.turn(HOME).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (ids, v) = (ids.clone(), v.clone());
        set.spawn(async move { who(&ids, &v, HOME, Some(("alice", "alice-pw"))).await });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while v.failures.queued(HOME) < 9 {
        assert!(
            std::time::Instant::now() < deadline,
            "the logins did not queue"
        );
        tokio::task::yield_now().await;
    }
    drop(held);
    while let Some(result) = set.join_next().await {
        assert_eq!(result.unwrap().unwrap(), "alice");
    }
    // One hash verified; the seven that queued behind it were answered from the cache.
    assert_eq!(v.verified.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A wrong password is never answered from the cache: verified again.
    assert!(who(&ids, &v, HOME, Some(("alice", "nope"))).await.is_err());
    assert_eq!(v.verified.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn an_intercepted_client_is_its_network_its_listeners_or_anonymous_and_never_passes_required() {
    let ci: IpAddr = "10.9.3.4".parse().unwrap();
    let (_dir, mut ids) = identities("");
    assert_eq!(&*intercepted(&ids, ci, None).unwrap(), "ci");
    assert_eq!(&*intercepted(&ids, HOME, None).unwrap(), "anonymous");
    // A listener's identity names whoever is not in an identity's network…
    assert_eq!(&*intercepted(&ids, HOME, Some("ci")).unwrap(), "ci");
    // …but not one that a reload removed.
    assert_eq!(
        &*intercepted(&ids, HOME, Some("gone")).unwrap(),
        "anonymous"
    );
    ids.auth.required = true;
    assert_eq!(&*intercepted(&ids, ci, None).unwrap(), "ci");
    let refusal = intercepted(&ids, HOME, None).unwrap_err();
    assert_eq!(refusal.reason, DenyReason::AuthRequired);
    assert_eq!(&*intercepted(&ids, HOME, Some("ci")).unwrap(), "ci");
}
