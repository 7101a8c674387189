//! git through the proxy: clones over http from `git http-backend` and over ssh from a real
//! sshd, and denied clones that say why.

use super::*;

/// A git server on loopback: `git http-backend` as a CGI behind Python's http.server, serving a
/// bare repository with one commit. Returns the clone URL; the server lives as long as `dir`'s
/// guard.
struct GitServer {
    url: String,
    _server: Server,
}

/// `srv/repo.git`: a bare repository with one commit (README: "hello from git").
fn bare_repo(srv: &Path) -> std::path::PathBuf {
    let git = |args: &[&str], cwd: &Path| {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    };
    std::fs::create_dir_all(srv).unwrap();
    git(&["init", "--bare", "repo.git"], srv);
    let src = srv.join("src");
    std::fs::create_dir_all(&src).unwrap();
    git(&["init"], &src);
    std::fs::write(src.join("README"), "hello from git\n").unwrap();
    git(&["add", "README"], &src);
    git(&["commit", "-m", "init"], &src);
    git(
        &[
            "push",
            srv.join("repo.git").to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
        &src,
    );
    srv.join("repo.git")
}

fn git_server(dir: &Path) -> GitServer {
    let srv = dir.join("srv");
    std::fs::create_dir_all(srv.join("cgi-bin")).unwrap();
    bare_repo(&srv);
    // http.server runs CGIs as nobody when started as root: trust the repository regardless.
    let script = format!(
        "#!/bin/sh\nexport GIT_PROJECT_ROOT={}\nexport GIT_HTTP_EXPORT_ALL=1\n\
         export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'\nexec git http-backend\n",
        srv.display()
    );
    let cgi = srv.join("cgi-bin/git");
    std::fs::write(&cgi, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--cgi",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&srv),
        port,
        "the git server did not start",
    );
    GitServer {
        url: format!("http://127.0.0.1:{port}/cgi-bin/git/repo.git"),
        _server: server,
    }
}

#[test]
fn git_clones_over_http_through_the_proxy_and_a_denied_clone_shows_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = git_server(dir.path());
    let work = tempfile::tempdir().unwrap();
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let allow = format!("127.0.0.1:{port}");
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--allow", &allow],
        &format!("git clone -q {} cloned", server.url),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("cloned/README")).unwrap(),
        "hello from git\n"
    );
    let denied = run_in(
        work.path(),
        no_home(),
        &[],
        &format!("git clone -q {} denied", server.url),
    );
    assert_ne!(denied.status.code(), Some(0));
    let stderr = text(&denied.stderr);
    assert!(stderr.contains("reason: not-allowlisted"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "egress-run: blocked 127.0.0.1:{port} (not-allowlisted)."
        )),
        "{stderr}"
    );
}

/// A real OpenSSH server on loopback, with its own host key, one authorised client key and no
/// password logins; it runs `git-upload-pack` for git over ssh.
struct SshServer {
    port: u16,
    _server: Server,
}

fn ssh_server(dir: &Path, client_key: &Path) -> SshServer {
    let keygen = |path: &Path| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success(), "ssh-keygen");
    };
    let host_key = dir.join("host_key");
    keygen(&host_key);
    keygen(client_key);
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
    // sshd refuses to start without its privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n",
            host_key.display(),
            authorized.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config),
        port,
        "sshd did not start",
    );
    SshServer {
        port,
        _server: server,
    }
}

#[test]
fn git_clones_over_ssh_through_the_proxy_with_the_connect_helper() {
    let dir = tempfile::tempdir().unwrap();
    let repo = bare_repo(&dir.path().join("srv"));
    let work = tempfile::tempdir().unwrap();
    // The key a user passes in for this clone: ~/.ssh is masked inside, so it lives elsewhere
    // (here in the working tree, which the sandbox sees).
    let key = work.path().join("deploy_key");
    let server = ssh_server(dir.path(), &key);
    let user = text(&Command::new("id").arg("-un").output().unwrap().stdout);
    // The user adds the key and host-key options to the GIT_SSH_COMMAND egress-run sets, whose
    // ProxyCommand carries ssh through the proxy.
    let clone = |target: &str| {
        format!(
            "GIT_SSH_COMMAND=\"$GIT_SSH_COMMAND -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes\" \
             git clone -q ssh://{}@127.0.0.1:{}{} {target}",
            key.display(),
            user.trim(),
            server.port,
            repo.display()
        )
    };
    let allow = format!("127.0.0.1:{}", server.port);
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--allow", &allow],
        &clone("cloned"),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("cloned/README")).unwrap(),
        "hello from git\n"
    );
    // The same options set by the caller, outside: egress-run keeps them and adds its
    // ProxyCommand after them.
    let outside = Command::new(egress_run())
        .args(["-q", "--allow", &allow, "--", "sh", "-c"])
        .arg(format!(
            "git clone -q ssh://{}@127.0.0.1:{}{} from-caller",
            user.trim(),
            server.port,
            repo.display()
        ))
        .current_dir(work.path())
        .env("HOME", no_home())
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes",
                key.display()
            ),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(outside.status.code(), Some(0), "{outside:?}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("from-caller/README")).unwrap(),
        "hello from git\n"
    );
    // Not allowed: ssh never reaches the server, and the helper says why.
    let denied = run_in(work.path(), no_home(), &[], &clone("denied"));
    assert_ne!(denied.status.code(), Some(0));
    let stderr = text(&denied.stderr);
    assert!(
        stderr.contains(&format!(
            "the proxy refused 127.0.0.1:{}: HTTP/1.1 403 Forbidden by egress: not-allowlisted",
            server.port
        )),
        "{stderr}"
    );
    assert!(!work.path().join("denied").exists());
}

#[test]
fn ssh_straight_to_an_allowed_name_is_captured_and_a_denied_name_does_not_resolve() {
    // No ProxyCommand: plain `ssh git.test`, as a user types it. The name exists only in
    // egress's nameserver; the sandbox's DNS stub answers it with a stand-in address, and the
    // connection to that address is captured and dialed by egress at the name's own address.
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("key");
    let server = ssh_server(dir.path(), &key);
    let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let dns = dns::DnsServer::start(&[("git.test", &[loopback])]);
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "allow: [\"git.test:{}\"]\n\
             dns: {{ nameservers: [\"{}\"], timeout: 2s }}\n\
             address_guard: {{ allow_networks: [127.0.0.1/32] }}\n",
            server.port, dns.addr
        ),
    )
    .unwrap();
    let user = text(&Command::new("id").arg("-un").output().unwrap().stdout);
    let ssh = |host: &str| {
        format!(
            "unset GIT_SSH_COMMAND; ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o BatchMode=yes -p {} {}@{host} echo hello over ssh",
            key.display(),
            server.port,
            user.trim()
        )
    };
    let policy = policy.to_str().unwrap();
    let out = run_in(
        work.path(),
        no_home(),
        &["--policy", policy],
        &ssh("git.test"),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "hello over ssh\n", "{out:?}");
    assert!(
        !text(&out.stderr).contains("egress-run: blocked"),
        "{out:?}"
    );
    let out = run_in(
        work.path(),
        no_home(),
        &["--policy", policy],
        &ssh("denied.test"),
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Could not resolve hostname denied.test"),
        "{stderr}"
    );
    assert!(
        stderr.contains("egress-run: dns: denied.test NXDOMAIN (not-allowlisted)."),
        "{stderr}"
    );
}
