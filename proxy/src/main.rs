//! `egress-proxy`: parse arguments, set up logging, bind, handle signals; the rest is the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use egress_config::Config;
use egress_proxy::audit::AuditLog;
use egress_proxy::logging::{self, LogFormat};
use egress_proxy::metrics::Metrics;
use egress_proxy::observe::Observer;
use egress_proxy::{BoundListener, ProxyState};
use tokio::net::TcpListener;
use tracing::{info, warn};

mod approvals_cli;
mod check;
mod health;
mod passwd;
mod workers;

/// Exit status after a shutdown that had to cut connections still open at the end of
/// `timeouts.shutdown_grace` (each has an audit line with `"cut": true`). A clean drain exits 0;
/// 1 is a failure to start or run, 2 a bad command line.
const EXIT_CONNECTIONS_CUT: u8 = 3;

/// At exit, how long the audit writer may take to write the lines still queued.
const AUDIT_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// An egress-filtering proxy: HTTP CONNECT, plain-HTTP forwarding and SOCKS5 on one port,
/// allowing only the destinations its policy names.
#[derive(Debug, Parser)]
#[command(name = "egress-proxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default when no subcommand is given).
    Run(RunArgs),
    /// Validate a policy file without starting; prints a summary. Exit 0 when valid, 1 when not.
    ///
    /// With a target (`HOST[:PORT]`, port 443 by default), prints the decision for it instead:
    /// allow, deny or report, the reason and the deciding rule, for `--as IDENTITY` (default
    /// `anonymous`).
    Check {
        /// The policy file.
        file: PathBuf,
        /// Decide as this identity (a user or an `identities` key; `anonymous`).
        #[arg(long = "as", value_name = "IDENTITY", requires = "target")]
        identity: Option<String>,
        /// A destination to decide: HOST or HOST:PORT.
        target: Option<String>,
    },
    /// Add a user to a users file (htpasswd, bcrypt) or change its password. The password is
    /// read from a prompt, or from the first line of standard input when it is not a terminal;
    /// never from the command line.
    Passwd {
        /// The users file (created when missing).
        file: PathBuf,
        /// The user name.
        user: String,
    },
    /// Print the embedded default policy, as a starting point for your own file.
    DefaultPolicy,
    /// Print the nftables ruleset of transparent mode (load it with `nft -f`).
    TransparentRules {
        /// Intercept the clients of a gateway, on this interface.
        #[arg(long, value_name = "IFACE", required_unless_present = "local")]
        gateway: Option<String>,
        /// Intercept this host's own programs instead, all but those of --user.
        #[arg(long, conflicts_with = "gateway", requires = "user")]
        local: bool,
        /// With --local: the user the proxy runs as (a name or uid), whose connections go out.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// The port of the `redirect://` (or, with --tproxy, `tproxy://`) listener.
        #[arg(long, default_value_t = 3129)]
        port: u16,
        /// Divert with nftables `tproxy` instead of `redirect` (gateways only).
        #[arg(long)]
        tproxy: bool,
        /// The TCP destination ports to intercept.
        #[arg(long, value_delimiter = ',', default_value = "80,443")]
        ports: Vec<u16>,
        /// Egress's DNS responder (`dns_server`) answers the clients on this host: DNS to any
        /// other server is dropped instead of forwarded.
        #[arg(long)]
        dns: bool,
    },
    /// Ask mode's pending approvals, through the admin API: list them, allow or deny one. The
    /// token is read from EGRESS_ADMIN_TOKEN or the admin token file, never from the arguments.
    Approvals {
        #[command(flatten)]
        target: approvals_cli::Target,
        #[command(subcommand)]
        what: approvals_cli::Approvals,
    },
    /// Exit 0 when the proxy whose admin listener is at ADDR answers `/livez` (for container
    /// health checks).
    Health {
        /// The admin listener's address.
        #[arg(default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Policy file (YAML). Without it, the embedded default policy is used. Reloaded on SIGHUP
    /// and when the file changes.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on ADDR instead of the file's `listen` (repeatable; http+socks5 on each).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<std::net::SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `debug`, `egress_proxy=debug`); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Worker threads (default: one per CPU this process may use, after its affinity and its
    /// cgroup's CPU quota).
    #[arg(long, value_name = "N")]
    workers: Option<std::num::NonZeroUsize>,
}

fn main() -> ExitCode {
    // Kerberos to a parent runs in a child process of this executable (see its module).
    egress_proxy::parent::negotiate::agent::run_if_asked();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check {
            file,
            identity,
            target,
        }) => check::run(&file, identity.as_deref(), target.as_deref()),
        Some(Command::Passwd { file, user }) => passwd::run(&file, &user),
        Some(Command::DefaultPolicy) => {
            print!("{}", egress_config::DEFAULT_POLICY_YAML);
            ExitCode::SUCCESS
        }
        Some(Command::TransparentRules {
            gateway,
            local: _,
            user,
            port,
            tproxy,
            ports,
            dns,
        }) => transparent_rules(gateway, user, port, tproxy, ports, dns),
        Some(Command::Approvals { target, what }) => approvals_cli::run(&target, &what),
        Some(Command::Health { admin }) => health::run(admin),
        Some(Command::Run(args)) => serve(args),
        None => serve(cli.run),
    }
}

fn transparent_rules(
    gateway: Option<String>,
    user: Option<String>,
    port: u16,
    tproxy: bool,
    ports: Vec<u16>,
    dns_responder: bool,
) -> ExitCode {
    use egress_proxy::transparent::{original::Diverted, rules};
    let scope = match (gateway, user) {
        (Some(inside), _) => rules::Scope::Gateway { inside },
        (None, Some(proxy_user)) => rules::Scope::Local { proxy_user },
        (None, None) => unreachable!("clap requires --gateway or --local --user"),
    };
    let diversion = if tproxy {
        Diverted::Tproxy
    } else {
        Diverted::Redirect
    };
    let asked = rules::Rules {
        scope,
        diversion,
        listener_port: port,
        ports,
        dns_responder,
    };
    match rules::ruleset(&asked) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("egress-proxy: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: RunArgs) -> ExitCode {
    // Held to the end of `serve`: dropping it flushes queued log lines before exit.
    let _log_writer = logging::init(args.log_format, &args.log_level);
    // The text's digest is kept: the reloader compares later versions of the file with it.
    let loaded = match &args.config {
        Some(path) => egress_config::read_file(path)
            .map_err(Box::new)
            .and_then(|text| {
                let digest = egress_proxy::reload::digest(text.as_bytes());
                egress_config::load_owned(text, &path.display().to_string())
                    .map(|c| (c, digest))
                    .map_err(Box::new)
            }),
        None => Ok((
            egress_config::default_config(),
            egress_proxy::reload::digest(b""),
        )),
    };
    let (mut config, loaded_digest) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("egress-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file_listeners = config.listeners.clone();
    if !args.listen.is_empty() {
        config.listeners = args
            .listen
            .iter()
            .map(|&address| {
                egress_config::Listener::plain(address, egress_config::ListenerProtocols::Mixed)
            })
            .collect();
    }
    let workers = workers::choose(args.workers);
    let runtime = match workers::runtime(workers) {
        Ok(rt) => {
            info!(
                workers = workers.count,
                from = workers.from,
                "runtime started"
            );
            rt
        }
        Err(e) => {
            eprintln!("egress-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve_config(
        config,
        args.config,
        file_listeners,
        loaded_digest,
    ));
    match served {
        Ok((stopped, audit)) => {
            // Every connection has ended and recorded its line by now; write them before
            // exiting.
            let unwritten = audit.map_or(0, |audit| audit.flush(AUDIT_FLUSH_WAIT));
            if unwritten > 0 {
                warn!(
                    lines = unwritten,
                    "exiting before the audit log could take every queued line"
                );
            }
            match stopped {
                Stopped::Drained => ExitCode::SUCCESS,
                Stopped::Cut => ExitCode::from(EXIT_CONNECTIONS_CUT),
            }
        }
        Err(e) => {
            eprintln!("egress-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How the proxy stopped.
enum Stopped {
    /// Every connection finished within the grace period.
    Drained,
    /// Some were still open at its end and were cut.
    Cut,
}

async fn serve_config(
    config: Config,
    path: Option<PathBuf>,
    file_listeners: Vec<egress_config::Listener>,
    loaded_digest: [u8; 32],
) -> anyhow::Result<(Stopped, Option<AuditLog>)> {
    // Signal handlers and the file watch exist before we announce we are listening, so a signal
    // or an edit right after start is never lost.
    let stop = stop_signal()?;
    let policy_path = path.clone();
    let reloader =
        path.map(|path| egress_proxy::reload::Reloader::start(path, file_listeners, loaded_digest));
    let mut bound = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let socket = match listener.protocols {
            egress_config::ListenerProtocols::Tproxy => {
                egress_proxy::transparent::bind::tproxy_listener(listener.address)
            }
            _ => TcpListener::bind(listener.address).await,
        }
        .with_context(|| format!("cannot listen on {}", listener.address))?;
        let address = socket.local_addr()?;
        info!(%address, protocols = listener.protocols.as_str(), "listening");
        if !address.ip().is_loopback() {
            warn!(%address, "listening beyond loopback: anyone who can reach this address may use the proxy");
        }
        bound.push(BoundListener {
            listener: socket,
            protocols: listener.protocols,
            proxy_protocol: listener.proxy_protocol.clone(),
            identity: listener.identity.clone(),
        });
    }
    let dns_server = match &config.dns_server {
        Some(settings) => Some(
            egress_proxy::dns_server::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {} (dns_server)", settings.listen))?,
        ),
        None => None,
    };
    let policy = &config.policy;
    info!(
        source = %config.source,
        mode = policy.mode().as_str(),
        allow = policy.allow().len(),
        deny = policy.deny().len(),
        "policy in force"
    );
    // Metrics and the audit log exist before the first connection, so nothing goes uncounted.
    let metrics = config
        .admin
        .as_ref()
        .map(|admin| Arc::new(Metrics::new(admin.blocked_domains_cap)));
    let admin = match &config.admin {
        Some(admin) => {
            let socket = TcpListener::bind(admin.listen)
                .await
                .with_context(|| format!("cannot listen on {} (admin)", admin.listen))?;
            info!(address = %socket.local_addr()?, "admin listening");
            Some((socket, admin.clone()))
        }
        None => None,
    };
    let audit = match &config.audit {
        Some(settings) => {
            let audit =
                AuditLog::start(settings, metrics.clone()).with_context(|| {
                    match &settings.path {
                        Some(path) => format!("cannot open the audit log {}", path.display()),
                        None => "cannot start the audit log".to_string(),
                    }
                })?;
            reopen_audit_on_sigusr1(audit.clone())?;
            Some(audit)
        }
        None => None,
    };
    if let Some(metrics) = &metrics {
        metrics.loaded_now();
        metrics.policy_loaded(&loaded_digest);
    }
    let observer = Arc::new(Observer::new(metrics, audit.clone()));
    // Ask mode's approvals are the decider: without an admin listener nobody can attend to
    // them, and an ask is refused at once (approval-unattended).
    let asks = egress_proxy::ask::Asks::new(observer.clone());
    let state = ProxyState::assemble(&config, observer, asks.clone());
    asks.stop_on(state.shutdown.clone());
    if let Some((socket, settings)) = admin {
        let listening =
            egress_proxy::admin::prepare(socket, &settings, policy_path, state.clone(), asks)?;
        tokio::spawn(egress_proxy::admin::serve(listening));
    }
    if let Some(bound) = dns_server {
        tokio::spawn(egress_proxy::dns_server::serve(bound, state.clone()));
    }
    if let Some(reloader) = reloader {
        tokio::spawn(reloader.run(state.clone()));
    }
    // Listeners bound, policy in force, admin serving: ready, for systemd's Type=notify. The
    // watchdog pings until the process exits (through the drain too, which may be long).
    let notifier = egress_proxy::notify::Notifier::from_env();
    if let Some(notifier) = &notifier {
        notifier.tell("READY=1\nSTATUS=serving");
        if let Some(interval) = egress_proxy::notify::watchdog_interval() {
            tokio::spawn(egress_proxy::notify::watchdog(
                notifier.clone(),
                interval,
                tokio_util::sync::CancellationToken::new(),
            ));
        }
    }
    let stop = async move {
        stop.await;
        if let Some(notifier) = &notifier {
            notifier.tell("STOPPING=1");
        }
    };
    if egress_proxy::run(bound, state, stop).await {
        Ok((Stopped::Drained, audit))
    } else {
        warn!(
            exit_code = EXIT_CONNECTIONS_CUT,
            "exiting after cutting connections still open at the end of the grace period"
        );
        Ok((Stopped::Cut, audit))
    }
}

/// SIGUSR1 reopens the audit log file (after logrotate moved it).
fn reopen_audit_on_sigusr1(audit: AuditLog) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            audit.reopen();
        }
    });
    Ok(())
}

/// Registers for SIGTERM and SIGINT now; the returned future completes on the first of them.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
    })
}
