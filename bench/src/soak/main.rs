//! `egress-soak`: mixed load through the real egress-proxy for a bounded time, with the policy
//! file replaced, broken and rewritten in place and SIGHUP sent while it runs; every answer is
//! checked against the policy in force, and the proxy's RSS and descriptors are followed.
//! Everything is on 127.0.0.1 (IP-literal targets, no DNS). `bench/soak.sh` builds and runs it;
//! bench/README.md says what it checks.

mod audit;
mod faults;
mod journal;
mod load;
mod origin;
mod policy;
mod proxy;
mod report;
mod watch;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use journal::Journal;
use policy::{PolicyFile, Targets, Variant};

#[derive(Debug, Parser)]
#[command(about = "Soak egress-proxy: mixed load, reloads and faults; every answer checked.")]
pub struct Args {
    /// How long the load runs, in minutes (fractions allowed).
    #[arg(long, default_value_t = 8.0)]
    minutes: f64,
    /// Parallel client loops.
    #[arg(long, default_value_t = 16)]
    loops: usize,
    /// Directory for the results and logs (created; default target/soak/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The egress-proxy binary.
    #[arg(long, default_value = "target/release/egress-proxy")]
    egress: PathBuf,
    /// The proxy's log level (its log is read for reloads and warnings).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Seconds between RSS and descriptor samples.
    #[arg(long, default_value_t = 2.0)]
    sample_secs: f64,
    /// Seconds a client waits for any answer before counting it wrong.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Upper bound on actions per loop, whatever the time.
    #[arg(long, default_value_t = 20_000_000)]
    max_actions: u64,
    /// Seed of the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The audit log is rotated this often, and the rotation before last is read and removed.
const ROTATE_EVERY: Duration = Duration::from_secs(30);
/// How long the run may take to settle after the load (metrics and audit to catch up).
const SETTLE: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("egress-soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.loops > 0,
        "--minutes and --loops must be positive"
    );
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("target/soak/{now}"))
    });
    let run_dir = out.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let out = std::fs::canonicalize(&out)?;
    let run_dir = out.join("run");
    let start = Instant::now();
    let faults_log = Arc::new(Journal::create(&out.join("faults.log"), start, 100_000)?);
    let wrong_log = Arc::new(Journal::create(&out.join("wrong.log"), start, 5_000)?);
    let proxy_log = Arc::new(Journal::create(&out.join("proxy.log"), start, 20_000)?);

    let allowed = origin::Origin::start()?;
    let denied = origin::Origin::start()?;
    let flip = origin::Origin::start()?;
    let v4 = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => unreachable!("origins bind 127.0.0.1"),
    };
    let targets = Targets {
        allowed: v4(allowed.addr),
        denied: v4(denied.addr),
        flip: v4(flip.addr),
    };
    let file = PolicyFile {
        path: run_dir.join("policy.yaml"),
        targets,
        audit: run_dir.join("audit.jsonl"),
    };
    std::fs::write(&file.path, file.text(Variant::A))?;
    let mut proxy =
        proxy::Proxy::start(&args.egress, &file.path, &args.log_level, proxy_log.clone())?;
    let pid = proxy.pid();
    eprintln!(
        "egress-soak: {:.1} min, {} loops; proxy pid {pid} on {} (admin {}); targets allowed {} denied {} flip {}; logs in {}",
        args.minutes,
        args.loops,
        proxy.addr,
        proxy.admin,
        targets.allowed,
        targets.denied,
        targets.flip,
        out.display()
    );

    let deadline = start + Duration::from_secs_f64(args.minutes * 60.0);
    let stop = Arc::new(AtomicBool::new(false));
    let fault_counts = Arc::new(faults::FaultCounts::default());
    let schedule = faults::Schedule {
        file: file.clone(),
        pid,
        start,
        deadline,
        stop: stop.clone(),
        journal: faults_log.clone(),
        counts: fault_counts.clone(),
    };
    let shared = load::Shared {
        proxy: proxy.addr,
        targets,
        deadline,
        stop: stop.clone(),
        timeout: Duration::from_secs(args.timeout_secs),
        max_actions: args.max_actions,
        requests: Default::default(),
        wrong: Default::default(),
        wrong_at: Default::default(),
        journal: wrong_log.clone(),
    };
    let audit_tally = Mutex::new(audit::AuditTally::default());
    let rotations = std::sync::atomic::AtomicU64::new(0);
    // The first sample before any client connects: the idle baseline.
    let mut samples: Vec<watch::Sample> = proxy::resources(pid)
        .map(|(rss_mb, fds)| watch::Sample {
            t: start.elapsed().as_secs_f64(),
            rss_mb,
            fds,
            requests: 0,
        })
        .into_iter()
        .collect();
    let mut died_at = None;

    let tally = std::thread::scope(|scope| {
        scope.spawn(|| schedule.run_writer());
        scope.spawn(|| schedule.run_hangups());
        scope.spawn(|| {
            rotate_audit(
                &file,
                pid,
                deadline,
                &stop,
                &rotations,
                &audit_tally,
                &faults_log,
            )
        });
        let loops: Vec<_> = (0..args.loops)
            .map(|id| {
                let shared = &shared;
                scope.spawn(move || load::run(id, args.seed, shared))
            })
            .collect();
        // The sampler: here, until every loop has finished.
        let every = Duration::from_secs_f64(args.sample_secs.max(0.1));
        let mut next_sample = Instant::now() + every;
        let mut next_progress = start + Duration::from_secs(10);
        while loops.iter().any(|h| !h.is_finished()) {
            if Instant::now() >= next_sample {
                next_sample += every;
                match proxy::resources(pid).filter(|_| proxy.alive()) {
                    Some((rss_mb, fds)) => samples.push(watch::Sample {
                        t: start.elapsed().as_secs_f64(),
                        rss_mb,
                        fds,
                        requests: shared.requests.load(Ordering::Relaxed),
                    }),
                    None if died_at.is_none() => {
                        died_at = Some(start.elapsed().as_secs_f64());
                        wrong_log.line("the proxy process is gone: stopping the load");
                        stop.store(true, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
            if Instant::now() >= next_progress {
                next_progress += Duration::from_secs(10);
                if let Some(s) = samples.last() {
                    eprintln!(
                        "  t={:4.0}s  requests {:>9}  wrong {:>5}  rss {:6.1} MB  fds {:4}",
                        s.t,
                        s.requests,
                        shared.wrong.load(Ordering::Relaxed),
                        s.rss_mb,
                        s.fds
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut total = load::Tally::default();
        for handle in loops {
            total.merge(&handle.join().expect("a client loop panicked"));
        }
        // Faults and rotation stop at the deadline; the loops may have stopped earlier.
        stop.store(true, Ordering::Relaxed);
        total
    });
    let load_seconds = start.elapsed().as_secs_f64();
    let after = settle(
        &mut proxy,
        &file,
        &audit_tally,
        rotations.into_inner(),
        &wrong_log,
    );
    let report = report::Report {
        args,
        out: &out,
        load_seconds,
        tally: &tally,
        wrong_at: &shared.wrong_at.lock().unwrap(),
        samples: &samples,
        died_at,
        denied_origin_connections: denied.counts.connections.load(Ordering::Relaxed),
        origin_open: [&allowed, &denied, &flip]
            .iter()
            .map(|o| o.counts.open.load(Ordering::Relaxed))
            .sum(),
        faults: &fault_counts,
        log: &proxy.log,
        after: &after,
        audit: &audit_tally.lock().unwrap(),
    };
    let passed = report.print()?;
    let exit = proxy.stop(Duration::from_secs(30));
    report::print_exit(&out, exit)?;
    for j in [&faults_log, &wrong_log, &proxy_log] {
        j.flush();
    }
    Ok(passed)
}

/// Rotates the audit log every 30 s (the first time sooner in a short run) and reads the
/// rotation before last (complete by then).
fn rotate_audit(
    file: &PolicyFile,
    pid: u32,
    deadline: Instant,
    stop: &AtomicBool,
    rotations: &std::sync::atomic::AtomicU64,
    tally: &Mutex<audit::AuditTally>,
    journal: &Journal,
) {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut next = Instant::now() + ROTATE_EVERY.min(left.mul_f64(0.4));
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        next += ROTATE_EVERY;
        let n = rotations.load(Ordering::Relaxed) + 1;
        if let Err(e) = std::fs::rename(&file.audit, audit::rotated(&file.audit, n)) {
            journal.line(&format!("audit rotation {n} failed: {e}"));
            continue;
        }
        rotations.store(n, Ordering::Relaxed);
        let signalled = proxy::signal(pid, "USR1");
        journal.line(&format!("audit log rotated ({n}), SIGUSR1: {signalled:?}"));
        if n >= 2 {
            let previous = audit::rotated(&file.audit, n - 1);
            let mut t = tally.lock().unwrap();
            if let Err(e) = t.scan(&previous, &file.targets, journal) {
                journal.line(&format!("reading {}: {e}", previous.display()));
            }
        }
    }
}

/// What the proxy reported once the load stopped and its counters settled.
#[derive(Debug, Default)]
pub struct After {
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub metrics_error: Option<String>,
    pub resources: Option<(f64, usize)>,
    /// Lines still to come when the wait for the audit log ended.
    pub audit_missing: i64,
}

/// Waits (bounded) for the metrics to stop moving and the audit log to catch up with them,
/// then reads the rest of the audit log.
fn settle(
    proxy: &mut proxy::Proxy,
    file: &PolicyFile,
    tally: &Mutex<audit::AuditTally>,
    rotations: u64,
    journal: &Journal,
) -> After {
    let mut after = After::default();
    let deadline = Instant::now() + SETTLE;
    let decisions = |m: &std::collections::BTreeMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with("egress_decisions_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    let mut last = -1.0;
    while Instant::now() < deadline {
        match proxy::scrape(proxy.admin) {
            Ok(m) => {
                let now = decisions(&m);
                after.metrics = m;
                after.metrics_error = None;
                if now == last {
                    break;
                }
                last = now;
            }
            Err(e) => after.metrics_error = Some(format!("{e:#}")),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let dropped = after
        .metrics
        .get("egress_audit_lines_dropped_total")
        .copied()
        .unwrap_or(0.0);
    let expected = (decisions(&after.metrics) - dropped) as i64;
    let first_unread = rotations.max(1);
    let pending: Vec<PathBuf> = (first_unread..=rotations)
        .map(|n| audit::rotated(&file.audit, n))
        .chain(std::iter::once(file.audit.clone()))
        .collect();
    let mut t = tally.lock().unwrap();
    loop {
        let on_disk: u64 = pending.iter().map(|p| audit::count_lines(p)).sum();
        after.audit_missing = expected - (t.lines + on_disk) as i64;
        if after.audit_missing <= 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for path in &pending {
        if path.exists() {
            if let Err(e) = t.scan(path, &file.targets, journal) {
                journal.line(&format!("reading {}: {e}", path.display()));
            }
        }
    }
    after.resources = proxy::resources(proxy.pid());
    after
}
