//! Secrets a sandboxed command must not read: credential files in the home directory and where
//! variables point, `.env` files anywhere in the trees it works in, system secrets when run as
//! root, credential variables (named at exit, never their values), a parent proxy's password in
//! any variable, and the caller's keyring. Each with its positive control: the same read works
//! outside the sandbox.

use super::*;

/// `HOME` for runs whose home does not matter: a working directory that is the home directory
/// is refused as a writable root (see `planting`).
const NO_HOME: &str = "/nonexistent";

/// Runs egress-run in `cwd` with `HOME=home`, `envs` added, `args` before `--` and `script` for
/// sh.
fn run_with(cwd: &Path, home: &Path, envs: &[(&str, &str)], args: &[&str], script: &str) -> Output {
    Command::new(egress_run())
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("XDG_RUNTIME_DIR")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("egress-run")
}

/// The same script outside the sandbox: the positive control.
fn outside(cwd: &Path, home: &Path, envs: &[(&str, &str)], script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .env("HOME", home)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// Writes `SECRET-<path>` into each path below `root` (folders made first).
fn plant(root: &Path, paths: &[&str]) {
    for path in paths {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, format!("SECRET-{path}\n")).unwrap();
    }
}

/// A script printing each file's content (nothing for what it cannot read); a failed read is
/// not the script's failure.
fn cat_each(dir: &str, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("cat \"{dir}/{p}\" 2>/dev/null; "))
        .chain(["true; ".to_string()])
        .collect()
}

/// The `SECRET-…` lines of an output, sorted.
fn secrets_seen(out: &Output) -> Vec<String> {
    let mut seen: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("SECRET-"))
        .map(String::from)
        .collect();
    seen.sort();
    seen
}

fn all_secrets(paths: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = paths.iter().map(|p| format!("SECRET-{p}")).collect();
    all.sort();
    all
}

#[test]
fn credential_files_in_the_home_directory_are_unreadable_and_none_is_created() {
    const HOME_FILES: [&str; 26] = [
        ".git-credentials",
        ".config/git/credentials",
        ".config/gh/hosts.yml",
        ".npmrc",
        ".pypirc",
        ".cargo/credentials.toml",
        ".cargo/credentials",
        ".docker/config.json",
        ".config/containers/auth.json",
        ".vault-token",
        ".pgpass",
        ".azure/msal_token_cache.json",
        ".kube/config",
        ".aws/credentials",
        ".config/gcloud/application_default_credentials.json",
        ".oci/config",
        ".config/doctl/config.yaml",
        ".bluemix/config.json",
        ".config/linode-cli",
        ".config/hcloud/cli.toml",
        ".terraform.d/credentials.tfrc.json",
        ".env",
        ".ssh/id_ed25519",
        ".netrc",
        ".gnupg/private-keys-v1.d/key.key",
        ".mozilla/firefox/profile/cookies.sqlite",
    ];
    // Under /var/tmp: visible inside (the sandbox's /tmp is its own).
    let home = tempfile::tempdir_in("/var/tmp").unwrap();
    let work = tempfile::tempdir().unwrap();
    plant(home.path(), &HOME_FILES);
    // Readable and harmless: not masked.
    plant(home.path(), &[".config/nvim/init.lua", ".gitconfig"]);
    let script = cat_each("$HOME", &HOME_FILES) + &cat_each("$HOME", &[".gitconfig"]);
    let before = listing(home.path());
    let inside = run_with(work.path(), home.path(), &[], &["-q"], &script);
    assert_eq!(inside.status.code(), Some(0), "{inside:?}");
    assert_eq!(secrets_seen(&inside), ["SECRET-.gitconfig"], "{inside:?}");
    let control = outside(work.path(), home.path(), &[], &script);
    let mut everything = all_secrets(&HOME_FILES);
    everything.push("SECRET-.gitconfig".into());
    everything.sort();
    assert_eq!(secrets_seen(&control), everything);
    assert_eq!(listing(home.path()), before, "nothing created or changed");
    // A home with none of them: nothing appears in it either (no "phantom dotfiles").
    let empty = tempfile::tempdir_in("/var/tmp").unwrap();
    let out = run_with(work.path(), empty.path(), &[], &["-q"], &script);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(listing(empty.path()), Vec::<String>::new());
    assert_eq!(listing(work.path()), Vec::<String>::new());
}

#[test]
fn files_that_variables_point_at_are_unreadable() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let files = [
        "kube/one.yaml",
        "kube/two.yaml",
        "docker/config.json",
        "gcp-key.json",
        "xdg/gh/hosts.yml",
        "cargo/credentials.toml",
        "podman-auth.json",
        "db-password",
    ];
    plant(dir.path(), &files);
    let at = |p: &str| dir.path().join(p).display().to_string();
    let kubeconfig = format!("{}:{}", at("kube/one.yaml"), at("kube/two.yaml"));
    let (docker, gcp, xdg, cargo, podman, db) = (
        at("docker"),
        at("gcp-key.json"),
        at("xdg"),
        at("cargo"),
        at("podman-auth.json"),
        at("db-password"),
    );
    let envs = [
        ("KUBECONFIG", kubeconfig.as_str()),
        ("DOCKER_CONFIG", &docker),
        ("GOOGLE_APPLICATION_CREDENTIALS", &gcp),
        ("XDG_CONFIG_HOME", &xdg),
        ("CARGO_HOME", &cargo),
        ("REGISTRY_AUTH_FILE", &podman),
        // Any removed variable's file: the `*_FILE` convention of container secrets.
        ("DB_PASSWORD_FILE", &db),
    ];
    let work = tempfile::tempdir().unwrap();
    let script = cat_each(&dir.path().display().to_string(), &files);
    let inside = run_with(work.path(), NO_HOME.as_ref(), &envs, &["-q"], &script);
    assert_eq!(inside.status.code(), Some(0), "{inside:?}");
    assert_eq!(secrets_seen(&inside), Vec::<String>::new(), "{inside:?}");
    let control = outside(work.path(), work.path(), &envs, &script);
    assert_eq!(secrets_seen(&control), all_secrets(&files));
}

#[test]
fn env_files_anywhere_in_the_trees_are_unreadable_but_templates_are_not() {
    // Under /var/tmp, which the sandbox shows: the ancestor's .env would be visible there.
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let env_files = [
        // The working directory's ancestor: a monorepo's root.
        ".env",
        "packages/web/.env",
        "packages/web/.env.local",
        "packages/web/.envrc",
        "packages/web/src/config/.env.production",
        "packages/web/a/b/c/d/e/f/g/h/i/j/.env",
        // A folder of them (cookiecutter-django's layout): masked whole.
        "packages/web/.envs/.production/.django",
    ];
    let readable = [
        "packages/web/.env.example",
        "packages/web/src/.env.sample",
        // Not searched: dependencies, caches, virtualenvs (see README).
        "packages/web/node_modules/dep/.env",
        "packages/web/target/CACHEDIR.TAG",
        "packages/web/target/.env",
        "packages/web/.venv/pyvenv.cfg",
        "packages/web/.venv/.env",
    ];
    plant(root.path(), &env_files);
    plant(root.path(), &readable);
    let extra = tempfile::tempdir_in("/var/tmp").unwrap();
    plant(extra.path(), &["cache/.env"]);
    let cwd = root.path().join("packages/web");
    let r = root.path().display().to_string();
    let script = cat_each(&r, &env_files)
        + &cat_each(&r, &readable)
        + &cat_each(&extra.path().display().to_string(), &["cache/.env"]);
    let before = (listing(root.path()), listing(extra.path()));
    let allow = ["-q", "--allow-write", extra.path().to_str().unwrap()];
    for args in [&allow[..], &["-q", "--read-only"]] {
        let inside = run_with(&cwd, NO_HOME.as_ref(), &[], args, &script);
        assert_eq!(inside.status.code(), Some(0), "{args:?}: {inside:?}");
        let mut expected = all_secrets(&readable);
        expected.retain(|s| !s.ends_with("CACHEDIR.TAG") && !s.ends_with("pyvenv.cfg"));
        let mut seen = secrets_seen(&inside);
        seen.retain(|s| !s.ends_with("CACHEDIR.TAG") && !s.ends_with("pyvenv.cfg"));
        if args.contains(&"--read-only") {
            // Not an --allow-write tree now, so not searched: readable, like any file.
            expected.push("SECRET-cache/.env".into());
            expected.sort();
        }
        assert_eq!(seen, expected, "{args:?}: {inside:?}");
    }
    let control = outside(&cwd, &cwd, &[], &script);
    let mut everything = all_secrets(&env_files);
    everything.extend(all_secrets(&readable));
    everything.push("SECRET-cache/.env".into());
    everything.sort();
    assert_eq!(secrets_seen(&control), everything);
    assert_eq!((listing(root.path()), listing(extra.path())), before);
}

#[test]
fn a_tree_deeper_than_the_search_is_named_in_a_warning() {
    let work = tempfile::tempdir().unwrap();
    // 40 folders deep, past the search's 32.
    let deep: String = (0..40).map(|i| format!("d{i}/")).collect::<String>() + ".env";
    plant(work.path(), &[".env", &deep]);
    let script = cat_each(".", &[".env", &deep]);
    let out = run_with(work.path(), NO_HOME.as_ref(), &[], &["-q"], &script);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The shallow one is masked; the deep one, past the bound, is not, and the warning says
    // so (even with --quiet) naming where the search stopped.
    assert_eq!(secrets_seen(&out), [format!("SECRET-{deep}")]);
    let stopped_at: String = (0..33).map(|i| format!("/d{i}")).collect();
    assert_eq!(
        text(&out.stderr),
        format!(
            "egress-run: stopped looking for .env files 32 folders deep; {}{stopped_at} and the \
             folders after it (in breadth-first order) were not searched, and .env files there \
             are readable by the command: --deny-read them, or start in a smaller directory\n",
            work.path().display()
        )
    );
}

#[test]
fn system_secrets_are_unreadable_even_as_root() {
    let work = tempfile::tempdir().unwrap();
    let script = "for f in /etc/shadow /etc/gshadow /etc/ssh/ssh_host_*_key; do \
                  [ -e \"$f\" ] && head -c 1 \"$f\" >/dev/null 2>&1 && echo \"read $f\"; done; \
                  grep -c . /proc/keys 2>/dev/null || echo no-keys";
    let inside = run_with(work.path(), NO_HOME.as_ref(), &[], &["-q"], script);
    assert_eq!(text(&inside.stdout), "no-keys\n", "{inside:?}");
    // As root (the suite's usual case) they are readable outside: the positive control.
    if rustix::process::getuid().is_root() {
        let control = outside(work.path(), work.path(), &[], script);
        assert!(
            text(&control.stdout).starts_with("read /etc/shadow\n"),
            "{control:?}"
        );
    }
}

#[test]
fn credential_variables_are_removed_and_named_at_exit_never_their_values() {
    let work = tempfile::tempdir().unwrap();
    let envs = [
        ("GITHUB_TOKEN", "value-one-gh"),
        ("AWS_SECRET_ACCESS_KEY", "value-two-aws"),
        ("AWS_SESSION_TOKEN", "value-three-aws"),
        ("ANTHROPIC_API_KEY", "value-four-anthropic"),
        ("MY_DB_PASSWORD", "value-five-db"),
        ("DATABASE_URL", "postgres://app:value-six-url@db:5432/app"),
        ("ODDLY_NAMED", "ghp_valueSevenOddlyNamed0123456789abcdef"),
        // egress-run sets this one itself: the caller's value is replaced, not reported.
        ("HTTPS_PROXY", "http://me:value-eight-proxy@corp:3128"),
        ("AWS_REGION", "eu-west-1"),
        ("KEEP_ME", "plain"),
    ];
    // PID 1 (egress-run's inner half) has the same environment, when it can be read at all.
    let script = "env; (tr '\\0' '\\n' </proc/1/environ) 2>/dev/null; true";
    // The part of each secret value that must never show, inside or in egress-run's messages.
    let markers = [
        "value-one-gh",
        "value-two-aws",
        "value-three-aws",
        "value-four-anthropic",
        "value-five-db",
        "value-six-url",
        "ghp_valueSeven",
        "value-eight-proxy",
    ];
    let values = |out: &Output| -> Vec<&str> {
        let all = text(&out.stdout) + &text(&out.stderr);
        markers.into_iter().filter(|m| all.contains(m)).collect()
    };
    let out = run_with(work.path(), NO_HOME.as_ref(), &envs, &[], script);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(values(&out), Vec::<&str>::new(), "a value leaked: {out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("AWS_REGION=eu-west-1\n"), "{stdout}");
    assert!(stdout.contains("KEEP_ME=plain\n"), "{stdout}");
    assert!(
        stdout.contains("HTTPS_PROXY=http://127.0.0.1:3128\n"),
        "{stdout}"
    );
    assert_eq!(
        text(&out.stderr),
        "egress-run: not passed to the command: ANTHROPIC_API_KEY, AWS_SECRET_ACCESS_KEY, \
         AWS_SESSION_TOKEN, DATABASE_URL, GITHUB_TOKEN, MY_DB_PASSWORD, ODDLY_NAMED (they look \
         like credentials; --pass-env NAME passes one).\n"
    );
    // Passed on explicitly: a name, a prefix.
    let passed = run_with(
        work.path(),
        NO_HOME.as_ref(),
        &envs,
        &["--pass-env", "GITHUB_TOKEN", "--pass-env", "AWS_*"],
        "env",
    );
    let stdout = text(&passed.stdout);
    for kept in [
        "GITHUB_TOKEN=value-one-gh",
        "AWS_SECRET_ACCESS_KEY=value-two-aws",
        "AWS_SESSION_TOKEN=value-three-aws",
    ] {
        assert!(stdout.contains(kept), "{kept}: {passed:?}");
    }
    assert!(!stdout.contains("value-four-anthropic"), "{passed:?}");
    assert!(
        text(&passed.stderr).starts_with(
            "egress-run: not passed to the command: ANTHROPIC_API_KEY, DATABASE_URL, "
        ),
        "{passed:?}"
    );
    // --quiet: removed all the same, and not told.
    let quiet = run_with(work.path(), NO_HOME.as_ref(), &envs, &["-q"], "env");
    assert_eq!(values(&quiet), Vec::<&str>::new(), "{quiet:?}");
    assert_eq!(text(&quiet.stderr), "", "{quiet:?}");
    // Outside, the script sees them all: the positive control.
    let control = outside(work.path(), work.path(), &envs, "env");
    assert_eq!(values(&control), markers, "{control:?}");
}

#[test]
fn a_parent_proxys_password_is_kept_from_the_command_whatever_holds_it() {
    const PASSWORD: &str = "parent-pa55-9931";
    let work = tempfile::tempdir().unwrap();
    // A parent nobody listens on: the command only reads its environment and files.
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "upstreams:\n  corp:\n    url: http://agent@127.0.0.1:9\n    password_env: CORP_PW_FOR_TEST\n\
         route:\n  default: corp\n",
    )
    .unwrap();
    let policy_arg = policy.to_str().unwrap();
    let envs = [
        ("CORP_PW_FOR_TEST", PASSWORD),
        // The same password under names no rule would catch.
        ("HARMLESS_NAME", PASSWORD),
        ("SOME_LIST", "a,parent-pa55-9931,b"),
        ("EGRESS_PROXY_PASSWORD", "unused-by-this-policy"),
    ];
    // PID 1 (egress-run's inner half) has the same environment, when it can be read at all.
    let script = "env; (tr '\\0' '\\n' </proc/1/environ) 2>/dev/null; true";
    let out = run_with(
        work.path(),
        NO_HOME.as_ref(),
        &envs,
        &["--policy", policy_arg],
        script,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(PASSWORD), "{out:?}");
    assert!(!all.contains("unused-by-this-policy"), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "egress-run: not passed to the command: CORP_PW_FOR_TEST, EGRESS_PROXY_PASSWORD, \
         HARMLESS_NAME, SOME_LIST (a parent proxy's password).\n"
    );
    // Never passed, even when asked: refused before anything runs, without the value.
    for (pass, holder) in [
        ("CORP_PW_FOR_TEST", "CORP_PW_FOR_TEST"),
        ("HARMLESS_*", "HARMLESS_NAME"),
    ] {
        let refused = run_with(
            work.path(),
            NO_HOME.as_ref(),
            &envs,
            &["--policy", policy_arg, "--pass-env", pass],
            "echo ran",
        );
        assert_eq!(refused.status.code(), Some(125), "{refused:?}");
        assert_eq!(text(&refused.stdout), "", "{refused:?}");
        assert!(
            text(&refused.stderr).starts_with(&format!(
                "egress-run: --pass-env {holder}: it holds a parent proxy's password"
            )),
            "{refused:?}"
        );
        assert!(!text(&refused.stderr).contains(PASSWORD), "{refused:?}");
    }
    // A password written into the policy file itself: the file is masked.
    let inline = work.path().join("inline.yaml");
    std::fs::write(
        &inline,
        format!("upstreams:\n  corp:\n    url: http://agent:{PASSWORD}@127.0.0.1:9\nroute:\n  default: corp\n"),
    )
    .unwrap();
    let script = format!("cat {} 2>/dev/null; env", inline.display());
    let out = run_with(
        work.path(),
        NO_HOME.as_ref(),
        &[("ALSO_HERE", PASSWORD)],
        &["-q", "--policy", inline.to_str().unwrap()],
        &script,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!text(&out.stdout).contains(PASSWORD), "{out:?}");
    let control = outside(work.path(), work.path(), &[], &script);
    assert!(text(&control.stdout).contains(PASSWORD), "{control:?}");
}

#[test]
fn the_callers_keyring_is_out_of_reach() {
    let work = tempfile::tempdir().unwrap();
    // In a session keyring of the test's own, a key as a credential helper would store it; then
    // the same reads outside and inside.
    let reads = "keyctl print \"$KEY\" 2>&1; keyctl show @s 2>&1; cat /proc/keys 2>&1; \
                 keyctl add user planted value @s 2>&1; \
                 keyctl request2 dns_resolver localhost \"\" @s 2>&1; true";
    let script = format!(
        "KEY=$(keyctl add user egress-test-key key-s3cret-payload @s) || exit 99; export KEY; \
         echo outside:; sh -c '{reads}'; echo inside:; {egress} -q -- sh -c '{reads}'",
        egress = egress_run(),
    );
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", NO_HOME)
        .stdin(Stdio::null())
        .output()
        .expect("keyctl (keyutils)");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    let (outside, inside) = stdout.split_once("inside:\n").unwrap();
    // Outside: the payload, the key in the session keyring and in /proc/keys.
    assert!(outside.contains("key-s3cret-payload"), "{outside}");
    assert!(outside.matches("egress-test-key").count() >= 2, "{outside}");
    // Inside: every keyring call refused, the key's name unlisted.
    assert!(!inside.contains("key-s3cret-payload"), "{inside}");
    assert!(!inside.contains("egress-test-key"), "{inside}");
    assert_eq!(
        inside.matches("Operation not permitted").count(),
        4,
        "print, show, add and request refused: {inside}"
    );
    assert!(inside.contains("cat: /proc/keys: "), "{inside}");
}

#[test]
fn a_kept_callers_value_is_judged_like_any_variable() {
    // egress-run adds to the caller's JAVA_TOOL_OPTIONS and GIT_SSH_COMMAND rather than
    // replacing them; a value that holds a credential is still removed, and only egress-run's
    // own part is set.
    let work = tempfile::tempdir().unwrap();
    let envs = [
        (
            "JAVA_TOOL_OPTIONS",
            "-Dcorp.repo=https://builder:value-nine-java@repo.corp/ -Xmx1g",
        ),
        ("GIT_SSH_COMMAND", "ssh -i ./deploy_key"),
    ];
    let script = "printf '%s\\n' \"$JAVA_TOOL_OPTIONS\" \"$GIT_SSH_COMMAND\"";
    let out = run_with(work.path(), NO_HOME.as_ref(), &envs, &[], script);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("value-nine-java"), "a value leaked: {all}");
    let mut lines = text(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let ssh = lines.pop().unwrap();
    assert_eq!(
        lines,
        ["-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts="]
    );
    assert!(
        ssh.starts_with("ssh -i ./deploy_key -o ProxyCommand='"),
        "{ssh}"
    );
    assert!(
        text(&out.stderr).contains(
            "egress-run: not passed to the command: JAVA_TOOL_OPTIONS (they look like credentials"
        ),
        "{out:?}"
    );
}
