use super::*;

fn bcrypt_line(user: &str, password: &str) -> String {
    // Cost 4: the lowest, so tests stay fast; the format is what matters here.
    let hash = bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    format!("{user}:{hash}\n")
}

fn argon2_line(user: &str, password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"a fixed test salt").unwrap();
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string();
    format!("{user}:{hash}\n")
}

#[test]
fn bcrypt_and_argon2id_users_verify_their_own_password_only() {
    let text = format!(
        "# team\n\n{}{}",
        bcrypt_line("alice", "correct horse"),
        argon2_line("bob", "battery staple")
    );
    let users = Users::parse(&text).unwrap();
    assert!(users.verify("alice", b"correct horse"));
    assert!(!users.verify("alice", b"correct horsE"));
    assert!(!users.verify("alice", b"battery staple"));
    assert!(users.verify("bob", b"battery staple"));
    assert!(!users.verify("bob", b""));
    assert!(!users.verify("carol", b"correct horse"));
    assert!(!users.verify("", b""));
}

#[test]
fn hashes_from_passwd_verify_and_use_2y() {
    let hash = hash_password(b"pw", DEFAULT_COST).unwrap();
    assert!(hash.starts_with("$2y$12$"), "{hash}");
    let users = Users::parse(&format!("dave:{hash}\r\n")).unwrap();
    assert!(users.verify("dave", b"pw"));
}

#[test]
fn broken_lines_are_reported_with_their_number() {
    let good = bcrypt_line("alice", "pw");
    let cases = [
        (format!("{good}no colon here\n"), 2, "expected user:hash"),
        (format!("{good}bob:$apr1$abc$def\n"), 2, "unsupported hash"),
        (format!("bob:{{SHA}}abc=\n{good}"), 1, "unsupported hash"),
        ("bob:plaintext\n".to_string(), 1, "unsupported hash"),
        ("\n\nbob:$2y$12$short\n".to_string(), 3, "malformed bcrypt"),
        (
            "bob:$argon2id$v=19$garbage\n".to_string(),
            1,
            "malformed argon2id",
        ),
        (format!("{good}{good}"), 2, "listed twice"),
        (
            format!("bad name:{}", &good[6..]),
            1,
            "invalid identity name",
        ),
        (format!("anonymous:{}", &good[6..]), 1, "reserved"),
        (
            format!("{}:{}", "a".repeat(65), &good[6..]),
            1,
            "invalid identity name",
        ),
    ];
    for (text, line, message) in cases {
        let error = Users::parse(&text).unwrap_err();
        assert_eq!(error.line, line, "{text:?}: {error:?}");
        assert!(error.message.contains(message), "{text:?}: {error:?}");
        assert!(!error.message.contains("$2y$"), "a hash leaked: {error:?}");
    }
}

#[test]
fn debug_shows_names_never_hashes() {
    let users = Users::parse(&bcrypt_line("alice", "pw")).unwrap();
    let shown = format!("{users:?}");
    assert!(shown.contains("alice") && !shown.contains('$'), "{shown}");
}
