//! egress-run on macOS: the embedded proxy (or a forwarder to `--proxy`) behind a credential on
//! a loopback port (`gate`), and the command under Seatbelt (`/usr/bin/sandbox-exec`) with the
//! profile of `seatbelt`, whose only network way out is that port. Compiled only on macOS, and
//! not yet run on a Mac (see README and docs/macos.md).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use egress_config::ListenerProtocols;
use egress_proxy::listener::Admission;
use egress_proxy::ProxyState;

use crate::gate::{self, Credential};
use crate::request::{absolute, password_files, prepare, Request};
use crate::seatbelt::plan::{self, Inputs};
use crate::seatbelt::{self, quote};
use crate::summary::Blocked;
use crate::{env, env_scrub, protect, secrets};

pub fn run(request: Request, print_profile: bool) -> anyhow::Result<ExitCode> {
    if request.srt_settings.is_some() {
        anyhow::bail!("--srt-settings is not supported on macOS yet");
    }
    let config = prepare(&request)?;
    let caller_env: Vec<_> = std::env::vars_os().collect();
    let scrub = env_scrub::scrub(
        &caller_env,
        &crate::request::parent_passwords(Some(&config)),
        &request.pass_env,
        &env::names(),
    )
    .map_err(anyhow::Error::msg)?;
    let cwd = std::env::current_dir()?.canonicalize()?;
    let allow_write = absolute(&request.allow_write)?;
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
    for warning in &found.warnings {
        eprintln!("{warning}");
    }
    let mut secret_paths = found.paths;
    secret_paths.extend(absolute(&request.deny_read)?);
    secret_paths.extend(password_files(&request, Some(&config))?);
    // Kept even when missing: unlike a mount, a rule creates nothing, and holds for a file
    // made later.
    secret_paths.extend(scrub.files(&caller_env));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listeners = runtime.block_on(gate::bind_loopback())?;
    let port = listeners[0].local_addr()?.port();
    let shared_temp = std::env::temp_dir().canonicalize()?;
    let temp = TempDir::create(&shared_temp)?;
    let decided = plan::decide(
        &Inputs {
            port,
            cwd: &cwd,
            allow_write: &allow_write,
            read_only: request.read_only,
            allow_write_home: request.allow_write_home,
            homes: &homes,
            secrets: &secret_paths,
            temp: &temp.0,
            shared_temp: &shared_temp,
        },
        &|name| std::env::var_os(name),
        protect::start_time(),
    )
    .map_err(anyhow::Error::msg)?;
    for warning in &decided.warnings {
        eprintln!("{warning}");
    }
    if !request.quiet {
        for note in &decided.notes {
            eprintln!("{note}");
        }
    }
    let profile = seatbelt::profile(&decided.plan);
    let args = seatbelt::command_line(&profile, &request.command);
    if print_profile {
        println!("{}", seatbelt::shown(seatbelt::SANDBOX_EXEC, &args));
        return Ok(ExitCode::SUCCESS);
    }

    let credential = Credential::random()?;
    let state = {
        let _within = runtime.enter();
        ProxyState::new(&config)
    };
    let admission = Admission::new(state.clone(), ListenerProtocols::Mixed, None);
    let blocked = Blocked::default();
    let following = blocked.follow(&state.observer, runtime.handle());
    // No listeners of its own: `run` keeps the parents' health probes going; the gate admits.
    runtime.spawn(egress_proxy::run(
        Vec::new(),
        state,
        std::future::pending::<()>(),
    ));
    let refused = gate::Refused::default();
    runtime.spawn(gate::serve(
        listeners,
        credential.clone(),
        refused.clone(),
        move |s, p| admission.admit(s, p),
    ));

    let self_exe = std::env::current_exe()?;
    let self_word = quote::proxy_command_word(&self_exe).with_context(|| {
        format!("egress-run's own path {self_exe:?} is not UTF-8: move it elsewhere")
    })?;
    let mut vars = gate::with_credential(env::proxy_env(port, &self_word), port, &credential);
    add_java_temp(&mut vars, &temp.0);
    let mut command = Command::new(seatbelt::SANDBOX_EXEC);
    command
        .args(&args)
        .env("TMPDIR", &temp.0)
        // zsh (macOS's login shell) puts here-documents under this prefix, /tmp/zsh by default.
        .env("TMPPREFIX", temp.0.join("zsh"))
        .stdin(Stdio::inherit());
    // The scrubbed variables removed first, then egress-run's set: the caller's own value of a
    // variable egress-run sets (say, the credential of an egress-run around this one) must not
    // remove egress-run's.
    env::apply(&mut command, vars, &scrub);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", seatbelt::SANDBOX_EXEC))?;
    crate::limits::raise_open_files();
    let pid = rustix::process::Pid::from_child(&child);
    crate::signals::pass_on_sent(crate::signals::catch()?, false, move |signal| {
        crate::signals::kill(pid, signal)
    });
    let status = child.wait()?;
    following.finish(&runtime);
    if !request.quiet {
        let told = scrub.message().into_iter().chain(blocked.paragraph());
        for paragraph in told.chain(refused.paragraph()) {
            eprintln!("{paragraph}");
        }
    }
    runtime.shutdown_background();
    // The check at exit, in this process: no PID namespace here to wait on, so anything the
    // command left running could still write after it (see docs/macos.md).
    if !decided.watch.roots.is_empty() {
        let report = protect::check(&decided.watch);
        eprint!("{}", protect::describe(&report));
        if !report.moved.is_empty() || !report.failed.is_empty() || report.incomplete {
            return Ok(protect::planted_exit(status));
        }
    }
    Ok(crate::signals::exit_code(status))
}

/// Java takes its temporary directory from the system (`confstr`), not `TMPDIR`: it is told
/// in `JAVA_TOOL_OPTIONS`, after the proxy settings there. A path that would need quoting there
/// is left out (the caller's `TMPDIR` has none on a usual Mac).
fn add_java_temp(vars: &mut [(String, String)], temp: &Path) {
    let Some(path) = temp
        .to_str()
        .filter(|p| !p.contains([' ', '"', '\\', '\'']))
    else {
        return;
    };
    for (_, value) in vars
        .iter_mut()
        .filter(|(name, _)| name == "JAVA_TOOL_OPTIONS")
    {
        value.push_str(&format!(" -Djava.io.tmpdir={path}"));
    }
}

/// The run's private temporary directory (`TMPDIR` inside), removed with what the command left
/// in it when egress-run ends.
struct TempDir(PathBuf);

impl TempDir {
    fn create(shared: &Path) -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = shared.join(format!("egress-run.{}", gate::random_hex(6)?));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for TempDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
