//! egress-run's first half, outside the sandbox: the proxy (embedded, or one already running),
//! the bridge (a socket pair, see `bridge`), and bubblewrap around the inner half. It forwards
//! SIGINT and SIGTERM to the sandbox's PID 1, returns the command's exit code, and leaves
//! nothing behind: the bridge is no file anywhere, and `--die-with-parent` takes the sandbox
//! down with egress-run however egress-run ends.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use egress_config::ListenerProtocols;
use egress_proxy::listener::Admission;
use egress_proxy::ProxyState;

use crate::bwrap::{self, Plan};
use crate::capture::names::Names;
use crate::guard::Guard;
use crate::request::{absolute, parent_passwords, password_files, prepare, Capture, Request};
use crate::summary::Blocked;
use crate::{bridge, env, env_scrub, protect, seccomp, secrets};

pub fn run(mut request: Request) -> anyhow::Result<ExitCode> {
    let bwrap = find_bwrap()?;
    let deny_write = merge_srt_settings(&mut request)?;
    let (outside, inside) = bridge::pair()?;
    // A policy file or `--proxy` may name parents with passwords, which must be kept from the
    // command (their files masked, their variables removed): they are read before the sandbox
    // is built. Otherwise, the policy loads while bwrap works (see below).
    let early = match (&request.policy, &request.proxy) {
        (None, None) => None,
        _ => Some(prepare(&request)?),
    };
    let sandbox = plan_sandbox(&request, early.as_ref(), deny_write)?;
    // Before any descriptor is made inheritable below: the guard must hold none of them.
    let guard = match sandbox.watch.as_ref() {
        None => None,
        Some(watch) => Some(Guard::spawn(&sandbox.plan.self_exe, watch)?),
    };
    let Started {
        mut child,
        info_read,
    } = start_bubblewrap(&bwrap, &request, &sandbox, inside, &outside)?;
    // Once the sandbox is (being) built, a failure must end it: the inner half sees the bridge
    // close and exits without the command. A shutdown, not a close: the signal thread holds a
    // duplicate of this end.
    let mut abandon = |error: anyhow::Error| {
        let _ = rustix::net::shutdown(&outside, rustix::net::Shutdown::Both);
        let _ = child.wait();
        error
    };
    // While bubblewrap builds the sandbox (most of the start-up time), the policy is loaded and
    // the proxy made ready; the inner half starts the command only once told to go, so a bad
    // policy or proxy URL means no command runs at all.
    let (state, runtime) = ready_proxy(early, &request).map_err(&mut abandon)?;
    let blocked = Blocked::default();
    let following = blocked.follow(&state.observer, runtime.handle());
    let sandbox_pid = read_child_pid(info_read);
    if let (Some(guard), Some(pid)) = (&guard, sandbox_pid) {
        guard.watch_sandbox(pid).map_err(&mut abandon)?;
    }
    // Fails only when the sandbox is already gone; the exit status below then says why.
    let _ = bridge::send_go(&outside);
    runtime.spawn(serve(outside, state, blocked.clone()));
    let status = child.wait()?;
    if sandbox_pid.is_none()
        && request.capture == Capture::Required
        && status.code() == Some(i32::from(crate::capture::REFUSED))
    {
        // `__capture` said why.
        return Ok(ExitCode::from(125));
    }
    if sandbox_pid.is_none() {
        bail!(
            "bubblewrap could not create the sandbox (exit {:?}); its own message is above. egress-run needs bubblewrap 0.5 or newer. \
             If it said \"No permissions to create new namespace\" \
             or \"Operation not permitted\", unprivileged user namespaces are off: \
             sysctl kernel.unprivileged_userns_clone=1 (Debian), or on Ubuntu 24.04+ \
             sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap",
            status.code()
        );
    }
    following.finish(&runtime);
    if !request.quiet {
        // At exit, beside what was blocked: why a tool may have found no token.
        let told = sandbox
            .scrub
            .message()
            .into_iter()
            .chain(blocked.paragraph());
        for paragraph in told {
            eprintln!("{paragraph}");
        }
    }
    // The command is over: no need to wait for the proxy's tasks to wind down.
    runtime.shutdown_background();
    let found = guard.map(Guard::finish).transpose()?.unwrap_or(false);
    if found {
        return Ok(protect::planted_exit(status));
    }
    Ok(crate::signals::exit_code(status))
}

/// `--srt-settings`: srt's allow, deny and filesystem lists join the request's; returns the
/// `--deny-write` paths they name.
fn merge_srt_settings(request: &mut Request) -> anyhow::Result<Vec<PathBuf>> {
    let Some(path) = &request.srt_settings else {
        return Ok(Vec::new());
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let srt = crate::srt::load(path, &home)?;
    for warning in &srt.warnings {
        eprintln!("{warning}");
    }
    request.allow.extend(srt.allow);
    request.deny.extend(srt.deny);
    request.deny_read.extend(srt.deny_read);
    request.allow_write.extend(srt.allow_write);
    Ok(srt.deny_write)
}

/// What the sandbox will be: its mounts, the variables kept from the command, and what the
/// guard watches (`None` when nothing is writable).
struct Sandbox {
    plan: Plan,
    scrub: env_scrub::Scrub,
    watch: Option<protect::Watch>,
}

/// Decides the sandbox: what the command must not read (secrets, parent passwords, scrubbed
/// variables' files), what it may write, and what it could plant for later there (refused,
/// protected by mounts, and watched by the guard).
fn plan_sandbox(
    request: &Request,
    early: Option<&egress_config::Config>,
    deny_write: Vec<PathBuf>,
) -> anyhow::Result<Sandbox> {
    let caller_env: Vec<_> = std::env::vars_os().collect();
    let scrub = env_scrub::scrub(
        &caller_env,
        &parent_passwords(early),
        &request.pass_env,
        &env::names(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut deny_read = absolute(&request.deny_read)?;
    deny_read.extend(password_files(request, early)?);
    deny_read.extend(scrub.files(&caller_env));
    let cwd = std::env::current_dir()?;
    bwrap::check_bindable(&cwd, "the working directory").map_err(anyhow::Error::msg)?;
    let allow_write = absolute(&request.allow_write)?;
    for path in &allow_write {
        bwrap::check_bindable(path, "--allow-write").map_err(anyhow::Error::msg)?;
    }
    let homes = crate::request::home_dirs();
    let trees: Vec<PathBuf> = std::iter::once(cwd.clone())
        .chain(allow_write.iter().cloned())
        .collect();
    let found = secrets::discover(&secrets::Scope {
        homes: &homes,
        cwd: &cwd,
        env: &caller_env,
        trees: &trees,
    });
    // Warnings are about what stays readable: said even with --quiet.
    for warning in &found.warnings {
        eprintln!("{warning}");
    }
    let protected = bwrap::existing_protected_paths(&homes);
    let roots: Vec<PathBuf> = match request.read_only {
        true => Vec::new(),
        false => std::iter::once(&cwd)
            .chain(allow_write.iter().filter(|p| p.exists()))
            .cloned()
            .collect(),
    };
    for warning in protect::refuse_home(&roots, &homes, request.allow_write_home)
        .map_err(anyhow::Error::msg)?
    {
        eprintln!("{warning}");
    }
    let survey = protect::survey(
        &roots,
        &homes,
        &|name| std::env::var_os(name),
        protect::start_time(),
    );
    if !request.quiet {
        for note in &survey.notes {
            eprintln!("{note}");
        }
    }
    let plan = Plan {
        cwd,
        allow_write,
        deny_read: existing_only(deny_read, request),
        deny_write: absolute(&deny_write)?,
        read_only: request.read_only,
        self_exe: std::env::current_exe()?,
        secrets: found.paths,
        protected,
        guarded: survey.binds,
        capture: request.capture != Capture::Off,
        resolv_conf: None,
    };
    Ok(Sandbox {
        plan,
        scrub,
        watch: (!roots.is_empty()).then_some(survey.watch),
    })
}

/// bubblewrap, started around the inner half.
struct Started {
    child: std::process::Child,
    /// bwrap's `--info-fd` JSON (see `read_child_pid`).
    info_read: std::os::fd::OwnedFd,
}

/// Starts bubblewrap around the inner half with the sandbox's mounts, seccomp filters and
/// environment, the bridge's `inside` end passed on to it, and signals to egress-run passed on
/// over the bridge's `outside` end.
fn start_bubblewrap(
    bwrap: &Path,
    request: &Request,
    sandbox: &Sandbox,
    inside: std::os::fd::OwnedFd,
    outside: &std::os::fd::OwnedFd,
) -> anyhow::Result<Started> {
    let (info_read, info_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // bwrap must inherit the info pipe's write end and the bridge's inside end (it passes the
    // latter on to the inner half); nothing else is spawned meanwhile, so clearing their
    // close-on-exec flags for the spawn leaks them nowhere.
    rustix::io::fcntl_setfd(&info_write, rustix::io::FdFlags::empty())?;
    rustix::io::fcntl_setfd(&inside, rustix::io::FdFlags::empty())?;
    // One pipe per filter, written now (a few hundred bytes each, far below a pipe's buffer) and
    // read by bwrap; the read ends must reach it, like the two descriptors above.
    let mut filters = Vec::new();
    for program in seccomp::programs()? {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        std::fs::File::from(write).write_all(&seccomp::to_bytes(&program))?;
        rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty())?;
        filters.push(read);
    }
    let self_inside = bwrap::self_inside(&sandbox.plan);
    let mut plan = sandbox.plan.clone();
    let resolv_conf = match plan.capture {
        true => resolv_conf()?,
        false => None,
    };
    plan.resolv_conf = resolv_conf
        .as_ref()
        .map(|(fd, path)| (fd.as_raw_fd(), path.clone()));
    // With capture, egress-run's own `__capture` step comes first and becomes bubblewrap (see
    // `capture`).
    let mut command = match request.capture {
        Capture::Off => Command::new(bwrap),
        wanted => {
            let mut command = Command::new(&sandbox.plan.self_exe);
            command.arg("__capture");
            if wanted == Capture::Required {
                command.arg("--require");
            }
            command.arg("--").arg(bwrap);
            command
        }
    };
    command
        .arg("--as-pid-1")
        .arg("--info-fd")
        .arg(info_write.as_raw_fd().to_string())
        .args(
            filters
                .iter()
                .flat_map(|fd| ["--add-seccomp-fd".to_string(), fd.as_raw_fd().to_string()]),
        )
        .args(bwrap::args(&plan))
        .arg(&self_inside)
        .arg("__inner")
        .arg("--bridge-fd")
        .arg(inside.as_raw_fd().to_string())
        .args(plan.capture.then_some("--capture"))
        .arg("--")
        .args(&request.command)
        .stdin(Stdio::inherit());
    let vars = env::proxy_env(env::INSIDE_PORT, &self_inside.to_string_lossy());
    env::apply(&mut command, vars, &sandbox.scrub);
    // Signals: see `signals`. bubblewrap starts with the terminal's signals ignored, and in a
    // process group of its own unless egress-run is the terminal's foreground job (there the
    // command must share the terminal's foreground group to read it and get Ctrl-C).
    let unblock = crate::inherited::shield_children()?;
    let own_group = !crate::inherited::foreground_of_a_terminal();
    if own_group {
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", bwrap.display()))?;
    let caught = crate::signals::catch()?;
    unblock.now();
    let signal_sink = rustix::io::dup(outside)?;
    // In a group of its own the sandbox gets nothing from the terminal: pass that on too.
    crate::signals::pass_on_sent(caught, own_group, move |signal| {
        // Fails only when the sandbox is gone already.
        let _ = bridge::send_signal(&signal_sink, signal);
    });
    crate::limits::raise_open_files();
    // `info_write`, `inside`, the filters' and resolv.conf's read ends are bwrap's now: dropped
    // here.
    drop(resolv_conf);
    Ok(Started { child, info_read })
}

/// The sandbox's `/etc/resolv.conf` (`capture::RESOLV_CONF`) in a pipe for bubblewrap, and
/// where to put it: where the host's file really is (a link into /run, as systemd-resolved's,
/// would lead nowhere in the sandbox's own /run otherwise). `None` without one on the host.
fn resolv_conf() -> anyhow::Result<Option<(std::os::fd::OwnedFd, PathBuf)>> {
    let Ok(path) = std::fs::canonicalize("/etc/resolv.conf") else {
        return Ok(None);
    };
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // A hundred bytes: far below a pipe's buffer.
    std::fs::File::from(write).write_all(crate::capture::RESOLV_CONF.as_bytes())?;
    rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty())?;
    Ok(Some((read, path)))
}

/// The embedded proxy's state (policy loaded now unless `early` has it) and the runtime it
/// will run on.
fn ready_proxy(
    early: Option<egress_config::Config>,
    request: &Request,
) -> anyhow::Result<(std::sync::Arc<ProxyState>, tokio::runtime::Runtime)> {
    let config = early.map_or_else(|| prepare(request), Ok)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let state = {
        let _within = runtime.enter();
        ProxyState::new(&config)
    };
    Ok((state, runtime))
}

/// The `--deny-read` paths that exist: a mask over a missing one would create it on the host
/// (and fail under the read-only root). Each one skipped is named, unless `--quiet`.
fn existing_only(paths: Vec<PathBuf>, request: &Request) -> Vec<PathBuf> {
    let (exist, missing): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|p| p.exists());
    if !request.quiet {
        for path in &missing {
            eprintln!(
                "egress-run: --deny-read {}: no such file or directory, nothing to hide",
                path.display()
            );
        }
    }
    exist
}

/// Serves the sandbox's connections from the bridge until the inner half closes it: each
/// accepted socket goes straight to the proxy, as if the proxy had accepted it itself — on
/// 3128 as a proxy client, on 3129 (captured, see `capture`) as an intercepted one, named by
/// its stand-in address, SNI or `Host` — and the DNS stub's sockets to the stub.
async fn serve(outside: std::os::fd::OwnedFd, state: std::sync::Arc<ProxyState>, blocked: Blocked) {
    let admission = Admission::new(state.clone(), ListenerProtocols::Mixed, None);
    let captured = Admission::new(state.clone(), ListenerProtocols::Redirect, None);
    let names = std::sync::Arc::new(Names::default());
    let _ = state.stand_ins.set(names.clone());
    // No listeners: `run` only keeps the parents' health probes going.
    tokio::spawn(egress_proxy::run(
        Vec::new(),
        state.clone(),
        std::future::pending::<()>(),
    ));
    bridge::receive(outside, |passed| match passed {
        bridge::Passed::Connection(stream, peer) => {
            let port = stream.local_addr().map(|a| a.port());
            if port.is_ok_and(|p| p == crate::capture::CAPTURE_PORT) {
                captured.admit(stream, peer)
            } else {
                admission.admit(stream, peer)
            }
        }
        bridge::Passed::Datagrams(socket) => {
            let stub =
                crate::capture::dns::serve(socket, state.clone(), names.clone(), blocked.clone());
            tokio::spawn(stub);
        }
    })
    .await;
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
