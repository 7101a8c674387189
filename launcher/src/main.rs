//! `egress-run`: runs a command in a sandbox whose only way out is the egress proxy.
//!
//! ```text
//! egress-run [--allow PATTERN]… [--policy FILE] [--proxy URL] [--allow-write PATH]… -- cmd args…
//! ```
//!
//! Linux: bubblewrap (user, pid, ipc, uts and network namespaces), no_new_privs and seccomp
//! filters. The sandbox's only network is its own loopback, where egress-run's inner half
//! listens on 127.0.0.1:3128 and passes each connection over a socket pair to the proxy in the
//! outer half (`run` outside, `inner` inside, `bridge` between them). macOS: Seatbelt
//! (`macos`, `seatbelt`).

// The platform is decided here, once: each module is compiled only where it is used. Both:
mod connect;
mod env;
mod env_files;
mod env_scrub;
mod limits;
mod policy;
mod protect;
mod request;
mod secrets;
mod signals;
mod summary;
// Linux: bubblewrap.
#[cfg(target_os = "linux")]
mod bridge;
#[cfg(target_os = "linux")]
mod bwrap;
#[cfg(target_os = "linux")]
mod capture;
#[cfg(target_os = "linux")]
mod guard;
#[cfg(target_os = "linux")]
mod inherited;
#[cfg(target_os = "linux")]
mod inner;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
mod srt;
// macOS: Seatbelt. The profile and its command line are pure functions, so their tests run on
// every platform (no Mac runs them here).
#[cfg(any(target_os = "macos", test))]
mod gate;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(any(target_os = "macos", test))]
mod seatbelt;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "egress-run",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    /// Send everything to a running proxy ([http://|https://|socks5://][USER@]HOST:PORT), which decides,
    /// instead of the embedded one.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// With a user in --proxy's URL: the file holding the password (else EGRESS_PROXY_PASSWORD).
    #[arg(long, value_name = "FILE")]
    proxy_password_file: Option<PathBuf>,
    /// Authenticate to --proxy with Kerberos (Negotiate): your own ticket, as `klist` shows it.
    #[arg(long)]
    proxy_negotiate: bool,
    /// Policy file for the embedded proxy (default: the built-in policy).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Allow a destination pattern (repeatable). Without --policy: only these are allowed.
    #[arg(long, value_name = "PATTERN")]
    allow: Vec<String>,
    /// Deny a destination pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    deny: Vec<String>,
    /// Also writable inside the sandbox (repeatable).
    #[arg(long, value_name = "PATH")]
    allow_write: Vec<PathBuf>,
    /// Let the working directory or an --allow-write path be your home directory (or hold
    /// it). Known startup files there stay protected; anything else a program runs is not.
    #[arg(long)]
    allow_write_home: bool,
    /// Hidden inside the sandbox (repeatable).
    #[arg(long, value_name = "PATH")]
    deny_read: Vec<PathBuf>,
    /// Read network and filesystem rules from sandbox-runtime (srt) settings JSON.
    #[arg(long, value_name = "FILE")]
    srt_settings: Option<PathBuf>,
    /// Nothing writable but a private /tmp.
    #[arg(long)]
    read_only: bool,
    /// Pass this variable to the command although it looks like a credential (repeatable;
    /// NAME or a prefix ending in *).
    #[arg(long, value_name = "NAME")]
    pass_env: Vec<String>,
    /// Linux: do not capture the connections of programs that ignore the proxy variables (nor
    /// answer names inside the sandbox); only the proxy variables lead out.
    #[arg(long, conflicts_with = "require_capture")]
    no_capture: bool,
    /// Linux: refuse to start when connections cannot be captured in the sandbox (instead of
    /// saying so once and going on with the proxy variables only).
    #[arg(long)]
    require_capture: bool,
    /// No summary at exit (blocked destinations, variables kept from the command).
    #[arg(long, short)]
    quiet: bool,
    /// macOS: print the sandbox-exec command line that would run (the profile in it), and exit.
    #[arg(long, hide = true)]
    print_profile: bool,
    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// A CONNECT tunnel to HOST PORT through the proxy on stdin/stdout (ssh's ProxyCommand).
    Connect {
        host: String,
        port: u16,
        /// The proxy's port on 127.0.0.1 (inside the Linux sandbox: 3128).
        #[arg(long, default_value_t = env::INSIDE_PORT)]
        proxy_port: u16,
    },
    /// Inside the sandbox (started by egress-run itself).
    #[cfg(target_os = "linux")]
    #[command(name = "__inner", hide = true)]
    Inner {
        /// The inherited end of the bridge (a socket pair with the outer half).
        #[arg(long)]
        bridge_fd: i32,
        /// Connections are captured: listen for them and for DNS too.
        #[arg(long)]
        capture: bool,
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// Sets up the sandbox's network namespace, then becomes bubblewrap (started by egress-run
    /// itself).
    #[cfg(target_os = "linux")]
    #[command(name = "__capture", hide = true)]
    Capture {
        /// Exit rather than go on without capture.
        #[arg(long)]
        require: bool,
        #[arg(last = true)]
        bwrap: Vec<OsString>,
    },
    /// Checks the writable paths once the sandbox is gone (started by egress-run itself).
    #[cfg(target_os = "linux")]
    #[command(name = "__guard", hide = true)]
    Guard(guard::GuardArgs),
}

fn main() -> ExitCode {
    // Kerberos to a parent runs in a child process of this executable (see its module).
    egress_proxy::parent::negotiate::agent::run_if_asked();
    let cli = Cli::parse();
    let print_profile = cli.print_profile;
    let result = match cli.sub {
        Some(Sub::Connect {
            host,
            port,
            proxy_port,
        }) => connect::run(&host, port, proxy_port),
        #[cfg(target_os = "linux")]
        Some(Sub::Inner {
            bridge_fd,
            capture,
            command,
        }) => inner::run(bridge_fd, capture, command),
        #[cfg(target_os = "linux")]
        Some(Sub::Capture { require, bwrap }) => capture::run(require, bwrap),
        #[cfg(target_os = "linux")]
        Some(Sub::Guard(args)) => guard::run(args),
        None if cli.command.is_empty() => {
            eprintln!(
                "egress-run: no command given; usage: egress-run [OPTIONS] -- COMMAND [ARGS…]"
            );
            return ExitCode::from(2);
        }
        None => platform_run(
            request::Request {
                proxy: cli.proxy,
                proxy_password_file: cli.proxy_password_file,
                proxy_negotiate: cli.proxy_negotiate,
                policy: cli.policy,
                allow: cli.allow,
                deny: cli.deny,
                allow_write: cli.allow_write,
                allow_write_home: cli.allow_write_home,
                deny_read: cli.deny_read,
                srt_settings: cli.srt_settings,
                read_only: cli.read_only,
                pass_env: cli.pass_env,
                quiet: cli.quiet,
                capture: match (cli.no_capture, cli.require_capture) {
                    (true, _) => request::Capture::Off,
                    (false, true) => request::Capture::Required,
                    (false, false) => request::Capture::Wanted,
                },
                command: cli.command,
            },
            print_profile,
        ),
    };
    result.unwrap_or_else(|e| {
        eprintln!("egress-run: {e:#}");
        ExitCode::from(125)
    })
}

#[cfg(target_os = "linux")]
fn platform_run(request: request::Request, print_profile: bool) -> anyhow::Result<ExitCode> {
    if print_profile {
        anyhow::bail!("--print-profile prints the macOS sandbox's profile; this is Linux");
    }
    run::run(request)
}

#[cfg(target_os = "macos")]
fn platform_run(request: request::Request, print_profile: bool) -> anyhow::Result<ExitCode> {
    macos::run(request, print_profile)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn platform_run(_: request::Request, _: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "egress-run runs commands in a sandbox on Linux (bubblewrap) and macOS (Seatbelt) only"
    )
}
