//! What must work through the proxy: curl, pip, the connect helper, `localhost`, srt settings,
//! and `--proxy` to a real Squid with and without credentials.

use super::*;

#[test]
fn allowed_traffic_goes_through_the_proxy_and_denials_are_explained() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{port}");
    let script = format!(
        "curl -sS http://127.0.0.1:{port}/hello; \
         curl -s -D - -o /dev/null http://example.org/ | tr -d '\\r' | grep -i '^x-egress-error'; \
         exit 3"
    );
    let out = run_in(work.path(), no_home(), &["--allow", &allow], &script);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "hello from origin\nX-Egress-Error: not-allowlisted\n"
    );
    assert_eq!(
        text(&out.stderr),
        "egress-run: blocked example.org:80 (not-allowlisted).\n"
    );
    let quiet = run_in(
        work.path(),
        no_home(),
        &["--quiet", "--allow", &allow],
        "curl -s http://example.org/ >/dev/null",
    );
    assert_eq!(text(&quiet.stderr), "");
}

/// Where the proxy has a port any local process could use (macOS), the connect helper shows
/// the run's credential, which it takes from its environment (never its arguments); without
/// one it sends none.
#[test]
fn the_connect_helper_shows_the_credential_from_its_environment() {
    use std::io::{BufRead, BufReader, Write};
    for credential in [Some("egress-run:0123abcd"), None] {
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = proxy.local_addr().unwrap().port().to_string();
        let mut helper = Command::new(egress_run());
        helper
            .args(["connect", "example.org", "22", "--proxy-port", &port])
            .env_remove("EGRESS_RUN_PROXY_CREDENTIAL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(credential) = credential {
            helper.env("EGRESS_RUN_PROXY_CREDENTIAL", credential);
        }
        let mut child = helper.spawn().unwrap();
        let (stream, _) = proxy.accept().unwrap();
        let mut head = Vec::new();
        let mut reader = BufReader::new(&stream);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line);
        }
        (&stream).write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        drop(reader);
        drop(stream);
        assert!(child.wait().unwrap().success());
        let shown: Vec<&String> = head
            .iter()
            .filter(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
            .collect();
        match credential {
            // base64("egress-run:0123abcd")
            Some(_) => assert_eq!(
                shown,
                ["Proxy-Authorization: Basic ZWdyZXNzLXJ1bjowMTIzYWJjZA==\r\n"],
                "{head:?}"
            ),
            None => assert!(shown.is_empty(), "{head:?}"),
        }
        assert_eq!(head[0], "CONNECT example.org:22 HTTP/1.1\r\n");
    }
}

#[test]
fn the_connect_helper_tunnels_stdin_and_stdout_through_the_proxy() {
    let servers = Servers::new();
    let echo = servers.echo();
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{}", echo.port());
    // What ssh does with GIT_SSH_COMMAND's ProxyCommand: bytes in, bytes back. The helper is
    // taken from that variable, as ssh takes it (egress-run's own path, or /run/egress-run when
    // that path is not visible inside).
    const HELPER: &str =
        "helper=${GIT_SSH_COMMAND#*ProxyCommand=\\'}; helper=${helper%% connect*};";
    let script = format!(
        "{HELPER} printf 'ping' | \"$helper\" connect 127.0.0.1 {}",
        echo.port()
    );
    let out = run_in(work.path(), no_home(), &["-q", "--allow", &allow], &script);
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(0), "ping"),
        "{out:?}"
    );
    let refused = run_in(
        work.path(),
        no_home(),
        &["-q"],
        &format!("{HELPER} \"$helper\" connect example.org 22 </dev/null"),
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        text(&refused.stderr).contains("the proxy refused example.org:22"),
        "{refused:?}"
    );
    assert!(
        text(&refused.stderr).contains("not-allowlisted"),
        "{refused:?}"
    );
}

#[test]
fn srt_settings_are_read_and_what_cannot_be_honoured_is_named() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    assert_ne!(port, 80, "an ephemeral port, not the default one");
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".secret"), "s3cret").unwrap();
    let settings = work.path().join("srt.json");
    std::fs::write(
        &settings,
        // No port: in srt that allows every port of the host, and so it must here.
        r#"{"network": {"allowedDomains": ["127.0.0.1"], "allowUnixSockets": ["/var/run/docker.sock"]},
            "filesystem": {"denyRead": ["~/.secret"]}}"#,
    )
    .unwrap();
    let script = format!("curl -sS http://127.0.0.1:{port}/hello; cat \"$HOME/.secret\"");
    let out = run_in(
        work.path(),
        home.path(),
        &["--srt-settings", settings.to_str().unwrap()],
        &script,
    );
    assert_eq!(
        text(&out.stdout),
        "hello from origin\n",
        "the secret stays unread: {out:?}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "egress-run: --srt-settings: network.allowUnixSockets is not honoured by egress-run and is ignored\n"
        ),
        "{stderr}"
    );
}

#[test]
fn pip_downloads_from_a_local_index_through_the_proxy() {
    // A one-package PEP 503 index: a minimal wheel, served by http.server on loopback.
    let dir = tempfile::tempdir().unwrap();
    let make = format!(
        r#"
import os, zipfile
root = {root:?}
os.makedirs(os.path.join(root, "simple", "egress-test-pkg"))
wheel = "egress_test_pkg-0.1-py3-none-any.whl"
with zipfile.ZipFile(os.path.join(root, "simple", "egress-test-pkg", wheel), "w") as z:
    z.writestr("egress_test_pkg/__init__.py", "")
    z.writestr("egress_test_pkg-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: egress-test-pkg\nVersion: 0.1\n")
    z.writestr("egress_test_pkg-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("egress_test_pkg-0.1.dist-info/RECORD", "")
with open(os.path.join(root, "simple", "egress-test-pkg", "index.html"), "w") as f:
    f.write('<a href="' + wheel + '">' + wheel + '</a>')
"#,
        root = dir.path().display().to_string()
    );
    let made = Command::new("python3")
        .args(["-c", &make])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait::listening(("127.0.0.1", port), "the index did not start");
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{port}");
    let pip = format!(
        "python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q \
         --index-url http://127.0.0.1:{port}/simple/ -d dl egress-test-pkg"
    );
    let out = run_in(work.path(), no_home(), &["-q", "--allow", &allow], &pip);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(work
        .path()
        .join("dl/egress_test_pkg-0.1-py3-none-any.whl")
        .exists());
}

/// Names the test Squids resolve (their hosts file) to the local origin.
const SQUID_HOSTS: &[(&str, &str)] = &[
    ("allowed.test", "127.0.0.1"),
    ("x.denied-by-squid.test", "127.0.0.1"),
];

#[test]
fn with_proxy_everything_goes_to_a_running_proxy_and_its_password_stays_outside() {
    use squid::{Squid, SquidOptions};
    const PASSWORD: &str = "run-pa55-4417";
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = Squid::start(&SquidOptions {
        users: &[("agent", PASSWORD)],
        deny_domains: &[".denied-by-squid.test"],
        hosts: SQUID_HOSTS,
        ..SquidOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://agent@{}", squid.addr);
    let run = |extra: &[&str], password: Option<&str>, script: &str| {
        let mut command = Command::new(egress_run());
        command
            .args(["-q", "--proxy", &proxy])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .current_dir(work.path())
            .env("HOME", no_home())
            .env_remove("EGRESS_PROXY_PASSWORD")
            .stdin(Stdio::null());
        if let Some(password) = password {
            command.env("EGRESS_PROXY_PASSWORD", password);
        }
        command.output().unwrap()
    };
    // HTTP, SOCKS5 and a Squid denial; then what the command could see of the password.
    let script = format!(
        "curl -s http://allowed.test:{port}/hello; \
         curl -s --socks5-hostname 127.0.0.1:3128 http://allowed.test:{port}/hello; \
         curl -s -i http://x.denied-by-squid.test:{port}/hello; \
         env; tr '\\0' ' ' </proc/1/cmdline; cat /proc/1/environ 2>/dev/null || echo pid-1-environ-unreadable"
    );
    let out = run(&[], Some(PASSWORD), &script);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.starts_with("hello from origin\nhello from origin\nHTTP/1.1 403"),
        "{stdout}"
    );
    assert!(
        stdout.contains("X-Squid-Error: ERR_ACCESS_DENIED 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("X-Egress-Error: upstream-denied"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(PASSWORD),
        "the command sees the password: {stdout}"
    );
    // Squid saw the user's requests by name, authenticated as the user.
    let entries = squid.wait_for_entries(3);
    let seen: Vec<(&str, &str, u16)> = entries
        .iter()
        .map(|e| (e.method.as_str(), e.user.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "agent", 200),
            ("CONNECT", "agent", 200),
            ("GET", "agent", 403)
        ],
        "{entries:?}"
    );
    assert_eq!(entries[1].url, format!("allowed.test:{port}"));

    // The password from a file instead: one the sandbox could see (under /var/tmp; its /tmp is
    // private), so it must be masked there.
    let secrets = tempfile::tempdir_in("/var/tmp").unwrap();
    let file = secrets.path().join("proxy-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let script = format!(
        "curl -s http://allowed.test:{port}/hello; cat {} /proc/1/environ",
        file.display()
    );
    let out = run(
        &["--proxy-password-file", file.to_str().unwrap()],
        None,
        &script,
    );
    assert!(
        text(&out.stdout).starts_with("hello from origin\n"),
        "{out:?}"
    );
    assert!(!text(&out.stdout).contains(PASSWORD), "{out:?}");

    // A policy file's own parent with a password file: masked too.
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "allow: [\"allowed.test:*\"]\nupstreams:\n  corp:\n    url: http://agent@{}\n    password_file: {}\nroute:\n  default: corp\n",
            squid.addr,
            file.display()
        ),
    )
    .unwrap();
    let out = Command::new(egress_run())
        .args(["-q", "--policy", policy.to_str().unwrap(), "--"])
        .args(["sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("hello from origin\n"),
        "{out:?}"
    );
    assert!(!text(&out.stdout).contains(PASSWORD), "{out:?}");

    // A wrong password: Squid's 407 reaches the command as egress's 502 with the reason.
    let out = run(
        &[],
        Some("wrong"),
        &format!("curl -s -i http://allowed.test:{port}/hello"),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 502"), "{stdout}");
    assert!(
        stdout.contains("X-Egress-Error: upstream-auth-failed"),
        "{stdout}"
    );

    // No password at all: refused before anything runs, saying where it should come from.
    let out = run(&[], None, "touch ran");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("names a user: give the password in EGRESS_PROXY_PASSWORD"),
        "{out:?}"
    );
    assert!(!work.path().join("ran").exists());
}

#[test]
fn with_proxy_and_no_credentials_requests_reach_it_and_a_dead_one_gets_a_clear_answer() {
    use squid::{Squid, SquidOptions};
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = Squid::start(&SquidOptions {
        hosts: SQUID_HOSTS,
        ..SquidOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://{}", squid.addr);
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--proxy", &proxy],
        &format!("curl -s http://allowed.test:{port}/hello"),
    );
    assert_eq!(text(&out.stdout), "hello from origin\n", "{out:?}");
    let entries = squid.wait_for_entries(1);
    assert_eq!(
        (entries[0].method.as_str(), entries[0].user.as_str()),
        ("GET", "-")
    );
    // A proxy that is not there: an answer naming the cause, over HTTP and SOCKS5 alike, and a
    // summary at exit; never a hang or a bare reset.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let script = format!(
        "curl -s -i http://allowed.test:{port}/hello; \
         curl -s --socks5-hostname 127.0.0.1:3128 http://allowed.test:{port}/hello; echo \"socks5 exit $?\""
    );
    let out = run_in(
        work.path(),
        no_home(),
        &["--proxy", &format!("http://{dead_addr}")],
        &script,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 502"), "{stdout}");
    assert!(
        stdout.contains("X-Egress-Error: upstream-unreachable"),
        "{stdout}"
    );
    // curl's exit 97: the SOCKS5 server replied with a failure (not a connection error).
    assert!(stdout.ends_with("socks5 exit 97\n"), "{stdout}");
    assert!(
        text(&out.stderr).contains(&format!(
            "egress-run: could not reach allowed.test:{port} (upstream-unreachable)"
        )),
        "{out:?}"
    );
    // A policy of egress-run's own would be ignored with --proxy: refused instead.
    let out = run_in(
        work.path(),
        no_home(),
        &["--proxy", &proxy, "--allow", "github.com"],
        "true",
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("--policy, --allow and --deny are for egress-run's own proxy")
    );
}

#[test]
fn srt_settings_with_no_allowed_domains_allow_nothing_not_the_built_in_list() {
    let work = tempfile::tempdir().unwrap();
    let settings = work.path().join("srt.json");
    std::fs::write(&settings, r#"{"network": {"allowedDomains": []}}"#).unwrap();
    // github.com is in the built-in list: it must be refused by the policy, before any lookup.
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--srt-settings", settings.to_str().unwrap()],
        "curl -s -o /dev/null -D - https://github.com/",
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 403"), "{out:?}");
    assert!(
        stdout.contains("X-Egress-Error: not-allowlisted"),
        "{out:?}"
    );
}

#[test]
fn allowing_localhost_reaches_the_hosts_loopback_through_the_proxy() {
    // srt's NO_PROXY sends "localhost" to the sandbox's own, empty loopback, so allowing it
    // silently does nothing there. Here the name goes to the proxy, which allows it.
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir().unwrap();
    let script = format!("echo \"[$NO_PROXY]\"; curl -sS http://localhost:{port}/hello");
    let allowed = run_in(
        work.path(),
        no_home(),
        &["-q", "--allow", &format!("localhost:{port}")],
        &script,
    );
    assert_eq!(
        text(&allowed.stdout),
        "[]\nhello from origin\n",
        "{allowed:?}"
    );
    // Not allowed: the proxy's refusal, not a connection to the sandbox's own loopback.
    let denied = run_in(
        work.path(),
        no_home(),
        &["-q"],
        &format!("curl -s -i http://localhost:{port}/hello"),
    );
    let stdout = text(&denied.stdout);
    assert!(stdout.starts_with("HTTP/1.1 403"), "{denied:?}");
}

#[test]
fn with_proxy_negotiate_the_users_kerberos_ticket_authenticates_to_the_parent() {
    use squid::{NegotiateAuth, Squid, SquidOptions};
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let realm = kdc::Kdc::start();
    realm.add_principal("HTTP/localhost");
    let service_keytab = realm.keytab("HTTP/localhost", "http.keytab");
    realm.add_user("dev", "dev-pw-8830");
    let krb5_config = realm.krb5_config();
    let squid = Squid::start(&SquidOptions {
        hosts: SQUID_HOSTS,
        negotiate: Some(NegotiateAuth {
            keytab: &service_keytab,
            krb5_config: &krb5_config,
        }),
        ..SquidOptions::default()
    });
    // The developer's own ticket, as kinit leaves it.
    let ccache = format!("FILE:{}", realm.dir().join("dev.ccache").display());
    let mut kinit = Command::new("kinit")
        .arg("dev")
        .env("KRB5_CONFIG", &krb5_config)
        .env("KRB5CCNAME", &ccache)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    kinit
        .stdin
        .take()
        .unwrap()
        .write_all(b"dev-pw-8830\n")
        .unwrap();
    assert!(kinit.wait().unwrap().success());

    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://localhost:{}", squid.addr.port());
    let out = Command::new(egress_run())
        .args(["-q", "--proxy", &proxy, "--proxy-negotiate", "--"])
        .args([
            "sh",
            "-c",
            &format!("curl -s http://allowed.test:{port}/hello"),
        ])
        .current_dir(work.path())
        .env("HOME", no_home())
        .env("KRB5_CONFIG", &krb5_config)
        .env("KRB5CCNAME", &ccache)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(0), "hello from origin\n"),
        "{out:?}"
    );
    let entries = squid.wait_for_entries(1);
    assert_eq!(
        entries[0].user,
        format!("dev@{}", kdc::REALM),
        "{entries:?}"
    );
    // A policy file's Kerberos parent with a service account's keytab: the embedded proxy
    // uses it, and the command cannot read it.
    realm.add_principal("agent");
    // In the working directory, which the command sees (the realm's directory is under the
    // host's /tmp, which it does not).
    let keytab = work.path().join("agent.keytab");
    std::fs::copy(realm.keytab("agent", "agent.keytab"), &keytab).unwrap();
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "allow: [\"allowed.test:*\"]\nupstreams:\n  corp:\n    url: {proxy}\n    auth: negotiate\n    keytab: {}\nroute:\n  default: corp\n",
            keytab.display()
        ),
    )
    .unwrap();
    let script = format!(
        "curl -s http://allowed.test:{port}/hello; cat {} >/dev/null 2>&1 && echo keytab-read || echo keytab-hidden",
        keytab.display()
    );
    let out = Command::new(egress_run())
        .args(["-q", "--policy", policy.to_str().unwrap(), "--"])
        .args(["sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", no_home())
        .env("KRB5_CONFIG", &krb5_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "hello from origin\nkeytab-hidden\n",
        "{out:?}"
    );
    let entries = squid.wait_for_entries(2);
    assert_eq!(
        entries[1].user,
        format!("agent@{}", kdc::REALM),
        "{entries:?}"
    );
}
