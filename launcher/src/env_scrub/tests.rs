use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

fn removed(scrub: &Scrub) -> Vec<(String, Why)> {
    scrub
        .removed
        .iter()
        .map(|(n, w)| (n.to_string_lossy().into_owned(), *w))
        .collect()
}

fn set_here() -> Vec<String> {
    crate::env::names()
}

#[test]
fn credential_names_are_recognised_by_their_words() {
    for name in [
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "NPM_TOKEN",
        "NODE_AUTH_TOKEN",
        "npm_config__authToken",
        "npm_config__auth",
        "CARGO_REGISTRY_TOKEN",
        "CARGO_REGISTRIES_CORP_TOKEN",
        "TF_TOKEN_app_terraform_io",
        "VAULT_TOKEN",
        "HF_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_CONNECTION_STRING",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENAI_APIKEY",
        "STRIPE_KEY",
        "DD_APP_KEY",
        "TWINE_PASSWORD",
        "PGPASSWORD",
        "MYSQL_PWD_PASSWD",
        "DB_PASS",
        "GPG_PASSPHRASE",
        "GITHUB_PAT",
        "CI_JOB_JWT",
        "SLACK_WEBHOOK_URL",
        "DOCKER_AUTH_CONFIG",
        "BW_SESSION",
        "OP_SESSION_my_team",
        "EGRESS_PROXY_PASSWORD",
    ] {
        assert!(
            credential_name(name),
            "{name} should look like a credential"
        );
    }
}

#[test]
fn ordinary_names_are_kept() {
    for name in [
        "PATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "LANG",
        "TERM",
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_CA_BUNDLE",
        "KUBECONFIG",
        "SSH_AUTH_SOCK",
        "SSH_ASKPASS",
        "GIT_ASKPASS",
        "TOKENIZERS_PARALLELISM",
        "KEY_PATH",
        "VAULT_ADDR",
        "XDG_SESSION_ID",
        "DBUS_SESSION_BUS_ADDRESS",
        "KEYBOARD",
        "MONKEYPATCH",
    ] {
        assert!(!credential_name(name), "{name} should be kept");
    }
}

#[test]
fn credential_values_are_recognised_whatever_the_name() {
    for value in [
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
        "glpat-abcdefghij0123456789",
        "xoxb-1234567890-abcdefghijkl",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...",
        "postgres://app:hunter2@db.internal:5432/app",
        "http://proxyuser:pa55@squid.corp:3128",
        "redis://:onlypassword@cache:6379/0",
        "mirror1 https://u:p@a.example/x mirror2",
    ] {
        assert!(
            credential_value(value),
            "{value:?} should look like a credential"
        );
    }
    for value in [
        "",
        "/usr/bin:/bin",
        "en_US.UTF-8",
        "http://squid.corp:3128",
        "https://user@github.com/org/repo.git",
        "git@github.com:org/repo.git",
        "http://[::1]:8080/path?a=b:c@d",
        "ghp_short",
        "AKIAIOSFODNN7EXAMPL",
        "sk-SK",
        "--max-old-space-size=4096",
    ] {
        assert!(!credential_value(value), "{value:?} should be kept");
    }
}

#[test]
fn credentials_are_removed_and_the_rest_kept() {
    let caller = env(&[
        ("PATH", "/usr/bin"),
        ("GITHUB_TOKEN", "t1"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_SECRET_ACCESS_KEY", "k"),
        ("DATABASE_URL", "postgres://u:pw@h/db"),
        (
            "INNOCENT_LOOKING",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        ("LANG", "C.UTF-8"),
        // egress-run replaces these with its own: not reported as removed.
        ("HTTPS_PROXY", "http://me:pw@corp:3128"),
        ("npm_config_proxy", "http://me:pw@corp:3128"),
    ]);
    let scrub = scrub(&caller, &[], &[], &set_here()).unwrap();
    assert_eq!(
        removed(&scrub),
        [
            ("AWS_SECRET_ACCESS_KEY".into(), Why::Credential),
            ("DATABASE_URL".into(), Why::Credential),
            ("GITHUB_TOKEN".into(), Why::Credential),
            ("INNOCENT_LOOKING".into(), Why::Credential),
        ]
    );
    assert_eq!(
        scrub.message().unwrap(),
        "egress-run: not passed to the command: AWS_SECRET_ACCESS_KEY, DATABASE_URL, \
         GITHUB_TOKEN, INNOCENT_LOOKING (they look like credentials; --pass-env NAME passes one)."
    );
    let nothing = super::scrub(&env(&[("PATH", "/bin")]), &[], &[], &set_here()).unwrap();
    assert_eq!(nothing.message(), None);
}

#[test]
fn pass_env_keeps_a_name_or_a_prefix() {
    let caller = env(&[
        ("GITHUB_TOKEN", "t1"),
        ("AWS_SECRET_ACCESS_KEY", "k"),
        ("AWS_SESSION_TOKEN", "s"),
        ("NPM_TOKEN", "n"),
        ("npm_config__authToken", "a"),
    ]);
    let pass = [
        "GITHUB_TOKEN".to_string(),
        "AWS_*".into(),
        "npm_config_*".into(),
    ];
    let scrub = scrub(&caller, &[], &pass, &set_here()).unwrap();
    assert_eq!(removed(&scrub), [("NPM_TOKEN".into(), Why::Credential)]);
}

#[test]
fn a_parent_password_is_removed_whatever_holds_it() {
    let caller = env(&[
        ("CORP_PROXY_PW_VAR", "s3cret-parent"),
        ("EGRESS_PROXY_PASSWORD", "other"),
        ("SOME_URL", "http://agent:s3cret-parent@squid:3128"),
        ("SHORT", "abc"),
        ("HAS_SHORT_INSIDE", "xxabcxx"),
        ("PATH", "/usr/bin"),
    ]);
    let scrub = scrub(&caller, &["s3cret-parent", "abc"], &[], &set_here()).unwrap();
    assert_eq!(
        removed(&scrub),
        [
            ("CORP_PROXY_PW_VAR".into(), Why::ParentPassword),
            ("EGRESS_PROXY_PASSWORD".into(), Why::ParentPassword),
            ("SHORT".into(), Why::ParentPassword),
            ("SOME_URL".into(), Why::ParentPassword),
        ],
        "a short password only as a whole value"
    );
    let message = scrub.message().unwrap();
    assert_eq!(
        message,
        "egress-run: not passed to the command: CORP_PROXY_PW_VAR, EGRESS_PROXY_PASSWORD, SHORT, \
         SOME_URL (a parent proxy's password)."
    );
    assert!(!message.contains("s3cret"));
}

#[test]
fn a_parent_password_or_a_variable_egress_run_sets_cannot_be_passed() {
    let caller = env(&[("CORP_PW", "s3cret-parent"), ("EGRESS_PROXY_PASSWORD", "p")]);
    for pass in ["CORP_PW", "CORP_*", "EGRESS_PROXY_PASSWORD"] {
        let error = scrub(&caller, &["s3cret-parent"], &[pass.into()], &set_here()).unwrap_err();
        assert!(
            error.starts_with("--pass-env ") && error.contains("parent proxy's password"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }
    let error = scrub(&caller, &[], &["HTTPS_PROXY".into()], &set_here()).unwrap_err();
    assert_eq!(
        error,
        "--pass-env HTTPS_PROXY: egress-run sets this variable itself, pointing at its proxy"
    );
}

#[test]
fn files_that_removed_variables_name_are_listed_when_they_exist() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let token_arg = token.to_str().unwrap();
    let caller = env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_arg),
        ("DB_PASSWORD_FILE", token_arg),
        ("MISSING_TOKEN_FILE", "/nonexistent/token"),
        ("RELATIVE_TOKEN", "token"),
        ("DEV_TOKEN", "/dev/null"),
        ("DIR_SECRET", dir.path().to_str().unwrap()),
        ("NOT_REMOVED", token_arg),
    ]);
    let scrub = scrub(&caller, &[], &[], &set_here()).unwrap();
    assert_eq!(scrub.files(&caller), [token]);
}
