//! egress-run on macOS: the embedded proxy (or a running one) on host loopback, and the command
//! under Seatbelt (`/usr/bin/sandbox-exec`) with a profile from `seatbelt`, whose only network
//! way out is that proxy's port. Written for macOS and compiled only there: it has not been
//! built or run on a Mac yet (see README).

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use egress_config::ListenerProtocols;
use egress_proxy::{BoundListener, ProxyState};

use crate::request::{absolute, password_files, prepare, Request};
use crate::seatbelt::{self, SeatbeltPlan};
use crate::summary::Blocked;
use crate::{bwrap, env};

pub fn run(request: Request) -> anyhow::Result<ExitCode> {
    if request.srt_settings.is_some() {
        anyhow::bail!("--srt-settings is not supported on macOS yet");
    }
    let config = prepare(&request)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let state = {
        let _within = runtime.enter();
        ProxyState::new(&config)
    };
    let blocked = Blocked::default();
    let following = blocked.follow(&state.observer, runtime.handle());
    let port = runtime.block_on(start_embedded(state))?.port();
    let cwd = std::env::current_dir()?;
    // The same rule as on Linux: `/` or a system directory would make everything writable.
    bwrap::check_bindable(&cwd, "the working directory").map_err(anyhow::Error::msg)?;
    let caller_env: Vec<_> = std::env::vars_os().collect();
    let scrub = crate::env_scrub::scrub(
        &caller_env,
        &crate::request::parent_passwords(Some(&config)),
        &request.pass_env,
        &env::names(),
    )
    .map_err(anyhow::Error::msg)?;
    let homes = crate::request::home_dirs();
    let mut trees = vec![cwd.clone()];
    trees.extend(absolute(&request.allow_write)?);
    let found = crate::secrets::discover(&crate::secrets::Scope {
        homes: &homes,
        cwd: &cwd,
        env: &caller_env,
        trees: &trees,
    });
    for warning in &found.warnings {
        eprintln!("{warning}");
    }
    let mut secrets = found.paths;
    secrets.extend(absolute(&request.deny_read)?);
    secrets.extend(password_files(&request, Some(&config))?);
    secrets.extend(scrub.files(&caller_env));
    let mut writable = Vec::new();
    if !request.read_only {
        writable.push(cwd);
        writable.extend(absolute(&request.allow_write)?);
    }
    let profile = seatbelt::profile(&SeatbeltPlan {
        proxy_port: port,
        writable,
        secrets,
    });
    let self_exe = std::env::current_exe()?;
    let mut command = Command::new(seatbelt::SANDBOX_EXEC);
    command
        .args(seatbelt::sandbox_exec_args(&profile, &request.command))
        .stdin(Stdio::inherit());
    env::apply(&mut command, port, &self_exe.to_string_lossy(), &scrub);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", seatbelt::SANDBOX_EXEC))?;
    let pid = rustix::process::Pid::from_child(&child);
    crate::signals::pass_on_sent(crate::signals::catch()?, false, move |signal| {
        crate::signals::kill(pid, signal)
    });
    let status = child.wait()?;
    following.finish(&runtime);
    if !request.quiet {
        for paragraph in scrub.message().into_iter().chain(blocked.paragraph()) {
            eprintln!("{paragraph}");
        }
    }
    runtime.shutdown_background();
    Ok(crate::signals::exit_code(status))
}

/// Seatbelt filters by address, so the proxy needs a port on loopback here.
async fn start_embedded(state: std::sync::Arc<ProxyState>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let bound = vec![BoundListener {
        listener,
        protocols: ListenerProtocols::Mixed,
    }];
    tokio::spawn(egress_proxy::run(
        bound,
        state,
        std::future::pending::<()>(),
    ));
    Ok(addr)
}
