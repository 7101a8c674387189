//! Who carries the traffic: nothing (direct), egress-proxy, Squid, tinyproxy. Each proxy runs as
//! its own process on an ephemeral loopback port with a throwaway configuration.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Set by `pin_this_process`: every proxy is then started on CPU 0.
static PINNED: AtomicBool = AtomicBool::new(false);

/// Pins this process (the load generator and the servers: every thread it has, and every thread
/// it starts later) to CPU 1, and every proxy started from now on to CPU 0.
pub fn pin_this_process() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism()?.get();
    anyhow::ensure!(
        cpus >= 2,
        "--pin needs two CPUs, this process may use {cpus}"
    );
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    anyhow::ensure!(status.success(), "taskset -p failed: {status}");
    PINNED.store(true, Ordering::Relaxed);
    Ok(())
}

/// `program` as a proxy process: under `taskset -c 0` when pinned (taskset execs it, so the
/// child's id is the proxy's, and any process it forks inherits the CPU).
fn proxy_command(program: &str) -> Command {
    if PINNED.load(Ordering::Relaxed) {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", program]);
        command
    } else {
        Command::new(program)
    }
}

pub enum Contender {
    Direct,
    Proxy {
        name: &'static str,
        addr: SocketAddr,
        child: Child,
        _dir: tempfile::TempDir,
        /// A reader of the admin event stream, as an open console page is (`--console`).
        watcher: Option<Child>,
        /// `Proxy-Authorization` value sent on every CONNECT (a proxy requiring a login).
        login: Option<String>,
    },
    /// egress-proxy as a library, on a runtime of its own in this process.
    Embedded {
        name: &'static str,
        addr: SocketAddr,
        _runtime: tokio::runtime::Runtime,
    },
}

impl Contender {
    pub fn name(&self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Proxy { name, .. } | Contender::Embedded { name, .. } => name,
        }
    }
}

impl Drop for Contender {
    /// SIGTERM first, so a proxy run under a profiler (callgrind writes its counts at exit)
    /// ends cleanly; SIGKILL when it has not ended within a minute (Squid under valgrind).
    fn drop(&mut self) {
        if let Contender::Proxy { child, watcher, .. } = self {
            if let Some(watcher) = watcher {
                let _ = watcher.kill();
                let _ = watcher.wait();
            }
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20)); // polling interval, not a sync
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// egress-proxy allowing exactly the benchmark's servers, logging at its default level.
pub fn egress(binary: &str, targets: &[SocketAddr]) -> anyhow::Result<Contender> {
    egress_with(binary, targets, "", "egress")
}

/// Another egress-proxy build (the previous release, say) with the same policy as `egress`.
pub fn egress_previous(binary: &str, targets: &[SocketAddr]) -> anyhow::Result<Contender> {
    egress_with(binary, targets, "", "egress-previous")
}

/// egress-proxy chained to `parent` (an HTTP proxy such as the Squid contender): every allowed
/// tunnel goes through it as `CONNECT`.
pub fn egress_via(
    binary: &str,
    targets: &[SocketAddr],
    parent: SocketAddr,
) -> anyhow::Result<Contender> {
    let upstream =
        format!("upstreams:\n  parent:\n    url: http://{parent}\nroute:\n  default: parent\n");
    egress_with(binary, targets, &upstream, "egress→squid")
}

/// egress-proxy with the admin listener (metrics) and the audit log (to a file) on: against
/// plain `egress`, the cost of observability on the hot path.
pub fn egress_observed(binary: &str, targets: &[SocketAddr]) -> anyhow::Result<Contender> {
    let extra = "admin: 127.0.0.1:0\naudit: { path: \"{dir}/audit.jsonl\" }\n";
    egress_with(binary, targets, extra, "egress+metrics+audit")
}

/// egress-proxy requiring a login (`auth.required: true`, a users file with one bcrypt user at
/// `egress-proxy passwd`'s cost), every tunnel logging in: against plain `egress`, the cost of
/// authentication per new tunnel (after the first check, the proxy's cache of verified logins
/// answers; a wrong password would pay the hash every time).
pub fn egress_auth(binary: &str, targets: &[SocketAddr]) -> anyhow::Result<Contender> {
    use base64::Engine as _;
    let users = tempfile::NamedTempFile::new()?;
    let hash = egress_config::identity::hash_password(
        b"bench-pass",
        egress_config::identity::DEFAULT_COST,
    )
    .map_err(anyhow::Error::msg)?;
    std::fs::write(users.path(), format!("bench:{hash}\n"))?;
    let extra = format!(
        "auth: {{users_file: \"{}\", required: true}}\n",
        users.path().display()
    );
    let token = base64::engine::general_purpose::STANDARD.encode("bench:bench-pass");
    let contender = egress_logged_in(
        binary,
        targets,
        &extra,
        "egress+auth",
        Some(format!("Basic {token}")),
    )?;
    // The file is read at start (and at reloads, none here): it may go now.
    drop(users);
    Ok(contender)
}

/// What a benchmark subscriber does with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubscriberWork {
    /// Only counts it: the cost of the stream itself (the event, the send, the wake-up).
    Count,
    /// Turns it into a JSON line, as a console streaming to a browser would.
    Json,
}

/// egress-proxy embedded in this process with metrics on and `subscribers` subscribers to its
/// event stream, each doing `work` with every record: against the same with none, the cost of
/// the event stream on the hot path.
pub fn embedded(
    targets: &[SocketAddr],
    subscribers: usize,
    work: SubscriberWork,
) -> anyhow::Result<Contender> {
    use egress_proxy::observe::{Event, Next, Observer};
    use std::sync::Arc;
    let allow: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let config = egress_config::load_str(
        &format!("allow: [{}]\nadmin: 127.0.0.1:0\n", allow.join(", ")),
        "bench",
    )?;
    // One worker, as egress-run embeds it: fewer idle threads spinning makes the instruction
    // counts of this contender repeatable.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let metrics = Arc::new(egress_proxy::metrics::Metrics::new(100));
    let state = {
        let _within = runtime.enter();
        egress_proxy::ProxyState::with_observer(
            &config,
            Arc::new(Observer::new(Some(metrics), None)),
        )
    };
    for _ in 0..subscribers {
        let mut events = state.observer.subscribe();
        runtime.spawn(async move {
            let mut seen = 0usize;
            while let Some(next) = events.next().await {
                match next {
                    Next::Event(Event::Outcome(record)) => match work {
                        SubscriberWork::Count => seen += 1,
                        SubscriberWork::Json => seen += record.audit_line().len(),
                    },
                    Next::Event(Event::Notice(_)) => {}
                    Next::Missed(n) => eprintln!("subscriber missed {n} events"),
                }
            }
            seen
        });
    }
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let bound = vec![egress_proxy::BoundListener {
        listener,
        protocols: egress_config::ListenerProtocols::Mixed,
        proxy_protocol: None,
        identity: None,
    }];
    runtime.spawn(egress_proxy::run(bound, state, std::future::pending()));
    let name = match subscribers {
        0 => "embedded",
        _ => "embedded+subscriber",
    };
    Ok(Contender::Embedded {
        name,
        addr,
        _runtime: runtime,
    })
}

/// `extra` is appended to the policy, with `{dir}` standing for the proxy's own temp directory.
fn egress_with(
    binary: &str,
    targets: &[SocketAddr],
    extra: &str,
    name: &'static str,
) -> anyhow::Result<Contender> {
    egress_logged_in(binary, targets, extra, name, None)
}

/// `egress_with`, each CONNECT sending `login` (a `Proxy-Authorization` value).
fn egress_logged_in(
    binary: &str,
    targets: &[SocketAddr],
    extra: &str,
    name: &'static str,
    login: Option<String>,
) -> anyhow::Result<Contender> {
    let dir = tempfile::tempdir()?;
    let extra = extra.replace("{dir}", &dir.path().display().to_string());
    let allow: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            // Limits raised so that the idle-memory mode can hold its thousands of tunnels from
            // one client address.
            "listen: 127.0.0.1:0\nallow: [{}]\n\
             limits: {{ max_connections: 30000, max_connections_per_client: 30000 }}\n{extra}",
            allow.join(", ")
        ),
    )?;
    let mut child = proxy_command(binary)
        .args(["--log-format", "json", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {binary} (build it with cargo build --release)"))?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let watch = name == "egress+console";
    let (mut addr, mut admin, mut token_ready) = (None, None, false);
    // The token file exists once the login link is logged.
    while addr.is_none() || (watch && !(admin.is_some() && token_ready)) {
        let line = lines
            .next()
            .context("egress-proxy exited before listening")??;
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["message"] == "listening" {
            addr = Some(event["address"].as_str().context("address")?.parse()?);
        }
        if event["message"] == "admin listening" {
            admin = event["address"].as_str().map(str::to_string);
        }
        token_ready |= event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("admin console login link"));
    }
    // Keep draining the log, as a supervisor would, so the proxy never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    let watcher = match admin.filter(|_| watch) {
        Some(admin) => Some(watch_events(&admin, &dir.path().join("admin.token"))?),
        None => None,
    };
    Ok(Contender::Proxy {
        name,
        addr: addr.context("address")?,
        child,
        _dir: dir,
        watcher,
        login,
    })
}

/// egress with metrics, audit and an open console: one admin-role reader of the event stream
/// taking every event as the console page does (the browser's own rendering not included).
pub fn egress_console(binary: &str, targets: &[SocketAddr]) -> anyhow::Result<Contender> {
    let extra = "admin: 127.0.0.1:0\naudit: { path: \"{dir}/audit.jsonl\" }\n";
    egress_with(binary, targets, extra, "egress+console")
}

/// `curl -N` on the admin event stream with the token file's token, its output read and
/// dropped.
fn watch_events(admin: &str, token_file: &std::path::Path) -> anyhow::Result<Child> {
    let token = std::fs::read_to_string(token_file)?;
    let mut child = Command::new("curl")
        .args(["-sN", "--noproxy", "*", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!("http://{admin}/api/v1/events"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok(child)
}

impl Contender {
    /// The proxy's process, when it has one of its own (for its resident set).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Contender::Proxy { child, .. } => Some(child.id()),
            _ => None,
        }
    }

    /// The proxy's address, for chaining another proxy to it.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Contender::Direct => None,
            Contender::Proxy { addr, .. } | Contender::Embedded { addr, .. } => Some(*addr),
        }
    }

    /// The `Proxy-Authorization` value its CONNECTs carry, if it requires a login.
    pub fn login(&self) -> Option<&str> {
        match self {
            Contender::Proxy { login, .. } => login.as_deref(),
            _ => None,
        }
    }
}

/// Squid with a minimal configuration: no cache, no access log, CONNECT to any port, the
/// benchmark's loopback servers allowed and every other destination refused (403), as egress's
/// allow list does. `program` is `squid` or a wrapper of it (one that runs it under a profiler).
pub fn squid(program: &str) -> anyhow::Result<Option<Contender>> {
    if program == "squid" && !installed("squid") {
        eprintln!("squid not installed: left out (bench/run.sh installs it)");
        return Ok(None);
    }
    let dir = world_writable_dir()?;
    let port = free_port()?;
    let d = dir.path().display();
    let conf = dir.path().join("squid.conf");
    std::fs::write(
        &conf,
        format!(
            "http_port 127.0.0.1:{port}\n\
             acl bench dstdomain -n 127.0.0.1\nhttp_access allow bench\nhttp_access deny all\n\
             cache deny all\ncache_mem 8 MB\n\
             access_log stdio:{d}/access.log\ncache_log {d}/cache.log\npid_filename {d}/squid.pid\ncoredump_dir {d}\n\
             shutdown_lifetime 0 seconds\nmax_filedescriptors 20000\n"
        ),
    )?;
    // Squid writes its access log, as its default configuration does and as egress writes
    // its line per connection: both pay for telling what they did. -N: one process, no kids
    // (nothing to pin or profile but this one).
    let child = proxy_command(program)
        .args(["-N", "-f"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let contender = Contender::Proxy {
        name: "squid",
        addr,
        child,
        _dir: dir,
        watcher: None,
        login: None,
    };
    wait_listening(addr, "squid")?;
    Ok(Some(contender))
}

/// tinyproxy with no Via header, allowing only 127.0.0.1 (its domain filter, default deny): other
/// destinations are refused (403), as egress's allow list does.
pub fn tinyproxy() -> anyhow::Result<Option<Contender>> {
    if !installed("tinyproxy") {
        eprintln!("tinyproxy not installed: left out (bench/run.sh installs it)");
        return Ok(None);
    }
    let dir = world_writable_dir()?;
    let port = free_port()?;
    let conf = dir.path().join("tinyproxy.conf");
    let filter = dir.path().join("allowed");
    std::fs::write(&filter, "^127\\.0\\.0\\.1$\n")?;
    std::fs::write(
        &conf,
        format!(
            "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 10000\n\
             LogLevel Critical\nPidFile \"{}/tinyproxy.pid\"\nDisableViaHeader Yes\n\
             Filter \"{}\"\nFilterDefaultDeny Yes\n",
            dir.path().display(),
            filter.display()
        ),
    )?;
    let child = proxy_command("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let contender = Contender::Proxy {
        name: "tinyproxy",
        addr,
        child,
        _dir: dir,
        watcher: None,
        login: None,
    };
    wait_listening(addr, "tinyproxy")?;
    Ok(Some(contender))
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} >/dev/null 2>&1 || test -x /usr/sbin/{program}"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// Squid and tinyproxy drop root for an unprivileged user that must still write here.
fn world_writable_dir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

/// A port that was free a moment ago (these proxies cannot report an ephemeral port back).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls until the daemon accepts, for at most 120 s (Squid under valgrind is slow to start):
/// it has no readiness signal of its own.
fn wait_listening(addr: SocketAddr, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not start listening on {addr}")
}
