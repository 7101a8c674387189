//! egress-run's first half, outside the sandbox: the proxy (embedded, or one already running),
//! the bridge socket in a private runtime directory, and bubblewrap around the inner half. It
//! forwards SIGINT and SIGTERM to the sandbox's PID 1, returns the command's exit code, and
//! leaves nothing behind: the runtime directory is outside the user's tree and removed at exit,
//! and `--die-with-parent` takes the sandbox down with egress-run.

use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use egress_proxy::{BoundListener, ProxyState};

use crate::bwrap::{self, Plan};
use crate::summary::Blocked;
use crate::{bridge, env, policy};

/// What the user asked for.
#[derive(Debug)]
pub struct Request {
    pub proxy: Option<String>,
    pub policy: Option<PathBuf>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_write: Vec<PathBuf>,
    pub deny_read: Vec<PathBuf>,
    pub srt_settings: Option<PathBuf>,
    pub read_only: bool,
    pub quiet: bool,
    pub command: Vec<OsString>,
}

pub fn run(mut request: Request) -> anyhow::Result<ExitCode> {
    let bwrap = find_bwrap()?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut deny_write = Vec::new();
    if let Some(path) = &request.srt_settings {
        let srt = crate::srt::load(path, &home)?;
        for warning in &srt.warnings {
            eprintln!("{warning}");
        }
        request.allow.extend(srt.allow);
        request.deny.extend(srt.deny);
        request.deny_read.extend(srt.deny_read);
        request.allow_write.extend(srt.allow_write);
        deny_write = srt.deny_write;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let blocked = Blocked::default();
    let proxy_addr = match &request.proxy {
        Some(url) => parse_proxy_url(url)?,
        None => {
            let config = policy::build(request.policy.as_deref(), &request.allow, &request.deny)?;
            let observer = blocked.clone();
            egress_proxy::account::observe(Box::new(move |outcome| observer.observe(outcome)));
            runtime.block_on(start_embedded(&config))?
        }
    };
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    remove_stale_runtime_dirs(&base);
    // tempfile creates it 0700; it is removed when `runtime_dir` drops, also on error paths.
    let runtime_dir = tempfile::Builder::new()
        .prefix("egress-run-")
        .tempdir_in(&base)?;
    let _alive = hold_lock(runtime_dir.path())?;
    let socket = runtime_dir.path().join("proxy.sock");
    let relay = runtime.block_on(async { bridge::serve_outside(&socket, proxy_addr) })?;
    runtime.spawn(relay);

    let cwd = std::env::current_dir()?;
    let (secrets, protected) = bwrap::existing_sensitive_paths(&home, &cwd);
    let plan = Plan {
        cwd,
        allow_write: absolute(&request.allow_write)?,
        deny_read: absolute(&request.deny_read)?,
        deny_write: absolute(&deny_write)?,
        read_only: request.read_only,
        runtime_dir: runtime_dir.path().to_path_buf(),
        self_exe: std::env::current_exe()?,
        secrets,
        protected,
    };
    let (info_read, info_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty())?;
    // The write end must reach bwrap; the read end must not.
    rustix::io::fcntl_setfd(&info_read, rustix::io::FdFlags::CLOEXEC)?;
    let info_fd = std::os::fd::AsRawFd::as_raw_fd(&info_write);
    let mut command = Command::new(&bwrap);
    command
        .arg("--as-pid-1")
        .arg("--info-fd")
        .arg(info_fd.to_string())
        .args(bwrap::args(&plan))
        .arg(bwrap::SELF_MOUNT)
        .arg("__inner")
        .arg("--socket")
        .arg(Path::new(bwrap::RUNTIME_MOUNT).join("proxy.sock"))
        .arg("--")
        .args(&request.command)
        .envs(env::proxy_env(env::INSIDE_PORT, bwrap::SELF_MOUNT))
        .stdin(Stdio::inherit());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", bwrap.display()))?;
    drop(info_write);
    let sandbox_pid = read_child_pid(info_read);
    if let Some(pid) = sandbox_pid.and_then(rustix::process::Pid::from_raw) {
        runtime.spawn(crate::signals::forward(pid));
    }
    let status = child.wait()?;
    if !request.quiet {
        if let Some(paragraph) = blocked.paragraph() {
            eprintln!("{paragraph}");
        }
    }
    if sandbox_pid.is_none() {
        bail!(
            "bubblewrap could not create the sandbox (exit {:?}). If it said \"No permissions to create new namespace\" \
             or \"Operation not permitted\", unprivileged user namespaces are off: \
             sysctl kernel.unprivileged_userns_clone=1 (Debian), or on Ubuntu 24.04+ \
             sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap",
            status.code()
        );
    }
    drop(runtime_dir);
    // The command is over: no need to wait for the proxy's tasks to wind down.
    runtime.shutdown_background();
    Ok(crate::inner::exit_code(status))
}

async fn start_embedded(config: &egress_config::Config) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = ProxyState::new(config);
    let bound = vec![BoundListener {
        listener,
        protocols: egress_config::ListenerProtocols::Mixed,
    }];
    tokio::spawn(egress_proxy::run(
        bound,
        state,
        std::future::pending::<()>(),
    ));
    Ok(addr)
}

/// `--proxy http://host:port` of an egress-proxy that is already running.
fn parse_proxy_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if rest.contains('@') {
        bail!("--proxy takes no credentials in the URL (they would show in ps); set EGRESS_PROXY_PASSWORD instead");
    }
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .with_context(|| format!("--proxy {url}"))?
        .next()
        .with_context(|| format!("--proxy {url}: no address"))
}

/// bwrap's `--info-fd` JSON: the host PID of the sandbox's PID 1. `None` when bwrap failed
/// before starting it.
fn read_child_pid(read: std::os::fd::OwnedFd) -> Option<i32> {
    let mut text = String::new();
    let _ = std::fs::File::from(read).read_to_string(&mut text);
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["child-pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
}

/// Runtime directories of egress-runs that were killed (kill -9 gives no chance to clean up).
/// A live run holds an exclusive lock on its directory's `lock` file for its whole life; the
/// kernel releases it when the process dies, however it dies. A directory without a lock file
/// yet is one being set up, and is left alone.
fn remove_stale_runtime_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("egress-run-")
        {
            continue;
        }
        let Ok(lock) = std::fs::File::open(entry.path().join("lock")) else {
            continue;
        };
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Creates `dir/lock`, locked for as long as the returned file is open. It is locked under
/// another name and then renamed, so a sweeper never finds `lock` unlocked while its run lives.
fn hold_lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    let pending = dir.join("lock.new");
    let lock = std::fs::File::create(&pending)?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .context("locking the runtime directory")?;
    std::fs::rename(&pending, dir.join("lock"))?;
    Ok(lock)
}

fn absolute(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    Ok(paths
        .iter()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            }
        })
        .collect())
}

/// bwrap from `EGRESS_RUN_BWRAP` when set (a build elsewhere), else the usual places: never
/// a `$PATH` lookup, so a directory the sandboxed tools can write cannot supply a fake one.
fn find_bwrap() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("EGRESS_RUN_BWRAP") {
        let path = PathBuf::from(path);
        if path.exists() {
            return Ok(path);
        }
        bail!(
            "EGRESS_RUN_BWRAP={} does not exist; unset it to use the installed bwrap",
            path.display()
        );
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join("bwrap");
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("bubblewrap (bwrap) is not installed: apt-get install bubblewrap, dnf install bubblewrap, or pacman -S bubblewrap")
}
