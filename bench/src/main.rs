//! `egress-bench`: the same loopback workloads straight to the servers, through egress-proxy, and
//! through Squid and tinyproxy when they are installed, interleaved (for each run and scenario,
//! every contender in a rotated order) so that machine noise hits every contender alike. Reports
//! medians with their range, and egress's ratios to the others against the performance targets.
//!
//! Scenarios (`--scenarios`, all on 127.0.0.1, each bounded in count and in time):
//! new tunnels/s from one client and from `--workers` clients (a one-byte echo in each); one bulk
//! tunnel and eight at once (MiB/s); forwarded plain-HTTP requests/s; denials/s (CONNECT to a
//! name on no allow list, answered 403). Every answer is checked: a failure is not speed.
//!
//! `--pin`: each proxy process on CPU 0 (`taskset -c 0`), this process (clients and servers) on
//! CPU 1, as a one-CPU container would run the proxy.
//!
//! With Squid installed, egress chained to that Squid (`egress→squid`) runs too, and its ratio
//! to Squid alone is printed: the cost of filtering in front of a corporate parent.

mod contenders;
mod idle;
mod requests;
mod scenarios;
mod servers;
mod workloads;

use std::time::Duration;

use clap::Parser;

use contenders::Contender;
use scenarios::{Counts, Scenario, Servers};

#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Path of the egress-proxy binary (build it with --release).
    #[arg(long, default_value = "target/release/egress-proxy")]
    egress: String,
    /// Runs per contender; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Bytes per bulk transfer.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Tunnels per tunnel-rate run (at most).
    #[arg(long, default_value_t = 2000)]
    tunnels: usize,
    /// Forwarded requests per run (at most).
    #[arg(long, default_value_t = 20000)]
    requests: usize,
    /// Denied CONNECTs per run (at most).
    #[arg(long, default_value_t = 5000)]
    denials: usize,
    /// Client threads of the "many clients" scenarios (tunnels-many, forward, deny).
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Scenarios to run, comma-separated (default: all; with --auth, --subscriber and
    /// --embedded-only: bulk,tunnels-many).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Only these contenders (by the names of the table, comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    contenders: Vec<String>,
    /// Each proxy on CPU 0 (`taskset -c 0`), this process (clients and origin servers) on CPU 1.
    #[arg(long)]
    pin: bool,
    /// The Squid program (a wrapper running it under a profiler, say).
    #[arg(long, default_value = "squid")]
    squid: String,
    /// Another egress-proxy binary (say, the previous release) run as the contender
    /// `egress-previous`, interleaved with the others: before and after a change in one run.
    #[arg(long, value_name = "BINARY")]
    previous: Option<String>,
    /// Leave out Squid and tinyproxy even when installed.
    #[arg(long)]
    egress_only: bool,
    /// Also run egress with an open console (a reader of its admin event stream).
    #[arg(long)]
    console: bool,
    /// Only direct and egress embedded in this process, without and with one subscriber to its
    /// event stream: the cost of the stream.
    #[arg(long)]
    subscriber: bool,
    /// Only egress embedded in this process with this many event-stream subscribers (for
    /// instruction counts under callgrind, one process per case).
    #[arg(long, value_name = "SUBSCRIBERS")]
    embedded_only: Option<usize>,
    /// Only direct, egress and egress requiring a login (`auth.required: true`): the cost of
    /// authentication on the new-tunnel rate.
    #[arg(long)]
    auth: bool,
    /// Only the idle-memory mode: hold this many CONNECT tunnels (each having carried a byte
    /// each way) through egress (and egress-previous), Squid and tinyproxy in turn, and report
    /// the growth of each proxy's resident set per tunnel.
    #[arg(long, value_name = "TUNNELS")]
    idle: Option<usize>,
    /// What the subscribers of --subscriber and --embedded-only do with each record.
    #[arg(long, value_enum, default_value_t = contenders::SubscriberWork::Json)]
    subscriber_work: contenders::SubscriberWork,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.pin {
        // Before any thread exists, so that every thread of this process inherits it.
        contenders::pin_this_process()?;
    }
    if let Some(count) = args.idle {
        return idle_memory(&args, count);
    }
    let servers = Servers {
        source: servers::source(args.bytes)?,
        source8: servers::source(args.bytes / 8)?,
        echo: servers::echo()?,
        origin: servers::origin()?,
    };
    let targets = servers.all();
    let wanted =
        |name: &str| args.contenders.is_empty() || args.contenders.iter().any(|c| c == name);
    let special = args.subscriber || args.auth || args.embedded_only.is_some();
    let mut contenders = vec![Contender::Direct];
    if let Some(subscribers) = args.embedded_only {
        contenders.push(contenders::embedded(
            &targets,
            subscribers,
            args.subscriber_work,
        )?);
    } else if args.auth {
        contenders.push(contenders::egress(&args.egress, &targets)?);
        contenders.push(contenders::egress_auth(&args.egress, &targets)?);
    } else if args.subscriber {
        contenders.push(contenders::embedded(&targets, 0, args.subscriber_work)?);
        contenders.push(contenders::embedded(&targets, 1, args.subscriber_work)?);
    } else {
        if wanted("egress") {
            contenders.push(contenders::egress(&args.egress, &targets)?);
        }
        if wanted("egress+metrics+audit") {
            contenders.push(contenders::egress_observed(&args.egress, &targets)?);
        }
        if let Some(previous) = args.previous.as_ref().filter(|_| wanted("egress-previous")) {
            contenders.push(contenders::egress_previous(previous, &targets)?);
        }
        if args.console {
            contenders.push(contenders::egress_console(&args.egress, &targets)?);
        }
    }
    if !(args.egress_only || special) {
        if wanted("squid") {
            if let Some(squid) = contenders::squid(&args.squid)? {
                // egress chained to that same Squid, against Squid alone: the cost of filtering
                // in front of a corporate parent.
                let parent = squid.addr().expect("a proxy has an address");
                contenders.push(squid);
                if wanted("egress→squid") {
                    contenders.push(contenders::egress_via(&args.egress, &targets, parent)?);
                }
            }
        }
        if wanted("tinyproxy") {
            contenders.extend(contenders::tinyproxy()?);
        }
    }
    if !wanted("direct") {
        contenders.remove(0);
    }
    let scenarios: Vec<Scenario> = match (&args.scenarios[..], special) {
        ([], false) => scenarios::ALL.to_vec(),
        ([], true) => vec![Scenario::Bulk, Scenario::TunnelsMany],
        (chosen, _) => chosen.to_vec(),
    };
    let counts = Counts {
        bytes: args.bytes,
        tunnels: args.tunnels,
        requests: args.requests,
        denials: args.denials,
        clients: args.workers,
    };
    // results[scenario][contender]: one value per run (none where the scenario does not apply).
    let mut results = vec![vec![Vec::new(); contenders.len()]; scenarios.len()];
    for run in 0..args.runs {
        for (s, scenario) in scenarios.iter().enumerate() {
            // A different order each run, so no contender always follows the same one (a
            // machine that slows down or speeds up over a run would otherwise favour a position).
            for k in 0..contenders.len() {
                let i = (k + run) % contenders.len();
                let contender = &contenders[i];
                let Some(value) = scenario.measure(contender, &servers, &counts)? else {
                    continue;
                };
                let connections = match scenario {
                    Scenario::Forward => format!(
                        " ({} client connections)",
                        requests::CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed)
                    ),
                    _ => String::new(),
                };
                eprintln!(
                    "run {}: {:<20} {:<36} {:>9.0}{connections}",
                    run + 1,
                    contender.name(),
                    scenario.label(&counts),
                    value
                );
                results[s][i].push(value);
            }
        }
    }
    report(&args, &contenders, &scenarios, &counts, &results);
    drop(contenders);
    Ok(())
}

/// The markdown table (scenario rows, contender columns, egress's ratios) and the comparisons.
fn report(
    args: &Args,
    contenders: &[Contender],
    scenarios: &[Scenario],
    counts: &Counts,
    results: &[Vec<Vec<f64>>],
) {
    let mode = if args.pin {
        "pinned: each proxy on CPU 0 (taskset -c 0); this process, clients and origin servers \
         (so direct too), on CPU 1"
    } else {
        "unpinned: proxies, clients and servers share both CPUs"
    };
    println!(
        "\n{mode}. {} runs, interleaved; median (min–max). Bulk {} MiB per transfer (8 × {} MiB \
         in parallel), at most {} tunnels, {} requests, {} denials per run; {} clients in the \
         many-client scenarios; forwarded requests on keep-alive client connections.\n",
        args.runs,
        counts.bytes >> 20,
        counts.bytes >> 23,
        counts.tunnels,
        counts.requests,
        counts.denials,
        counts.clients
    );
    let position = |name: &str| contenders.iter().position(|c| c.name() == name);
    let ratio_columns = ["squid", "direct", "tinyproxy"];
    let mut head = String::from("| scenario |");
    let mut rule = String::from("|---|");
    for contender in contenders {
        head += &format!(" {} |", contender.name());
        rule += "---:|";
    }
    for other in ratio_columns {
        head += &format!(" egress/{other} |");
        rule += "---:|";
    }
    println!("{head} target |\n{rule}---|");
    let egress = position("egress");
    for (s, scenario) in scenarios.iter().enumerate() {
        let mut row = format!("| {} |", scenario.label(counts));
        for values in &results[s] {
            row += &match values.is_empty() {
                true => " — |".to_string(),
                false => format!(" {} |", with_range(values)),
            };
        }
        let ratio = |other: &str| -> Option<(f64, String)> {
            let (a, b) = (&results[s][egress?], &results[s][position(other)?]);
            (!a.is_empty() && !b.is_empty()).then(|| (median(a) / median(b), spread(a, b)))
        };
        for other in ratio_columns {
            row += &match ratio(other) {
                Some((r, range)) => format!(" {r:.2} ({range}) |"),
                None => " — |".to_string(),
            };
        }
        row += &match scenario.target(args.pin) {
            Some((other, least)) => match ratio(other) {
                Some((r, _)) if r >= least => format!(" ≥ {least}× {other}: met |"),
                Some(_) => format!(" ≥ {least}× {other}: missed |"),
                None => format!(" ≥ {least}× {other}: not measured |"),
            },
            None => " |".to_string(),
        };
        println!("{row}");
    }
    let compare = |label: &str, a: &str, b: &str| {
        let (Some(a), Some(b)) = (position(a), position(b)) else {
            return;
        };
        let parts: Vec<String> = scenarios
            .iter()
            .enumerate()
            .filter(|(s, _)| !results[*s][a].is_empty() && !results[*s][b].is_empty())
            .map(|(s, scenario)| {
                format!(
                    "{} {:.3} (spread {})",
                    scenario.label(counts),
                    median(&results[s][a]) / median(&results[s][b]),
                    spread(&results[s][a], &results[s][b])
                )
            })
            .collect();
        println!("\n{label}: {}", parts.join("; "));
    };
    compare(
        "metrics and audit on vs off",
        "egress+metrics+audit",
        "egress",
    );
    compare("egress vs egress-previous", "egress", "egress-previous");
    compare(
        "one event-stream subscriber vs none",
        "embedded+subscriber",
        "embedded",
    );
    compare("egress→squid vs squid alone", "egress→squid", "squid");
    compare("auth.required true vs false", "egress+auth", "egress");
}

/// `median (min–max)`, no decimals (rates and MiB/s).
fn with_range(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    format!("{:.0} ({low:.0}–{high:.0})", median(values))
}

/// `--idle`: bytes of RSS per idle tunnel, contenders interleaved in a rotated order each run.
fn idle_memory(args: &Args, count: usize) -> anyhow::Result<()> {
    let origin = idle::HoldOrigin::start()?;
    let mut contenders = vec![contenders::egress(&args.egress, &[origin.addr])?];
    if let Some(previous) = &args.previous {
        contenders.push(contenders::egress_previous(previous, &[origin.addr])?);
    }
    if !args.egress_only {
        contenders.extend(contenders::squid(&args.squid)?);
        contenders.extend(contenders::tinyproxy()?);
    }
    let mut bytes: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    // One run only: a proxy's allocator keeps the memory its closed tunnels freed, so a second
    // run in the same process would reuse it and show almost no growth.
    for run in 0..1 {
        for k in 0..contenders.len() {
            let i = (k + run) % contenders.len();
            let per = idle::per_tunnel(&contenders[i], origin.addr, count)?;
            // Every tunnel of this contender closed at both ends before the next one.
            origin.release();
            eprintln!(
                "run {}: {:<16} {:>8.0} bytes per idle tunnel",
                run + 1,
                contenders[i].name(),
                per
            );
            bytes[i].push(per);
        }
    }
    println!("\n{count} idle tunnels held, one run per proxy process\n");
    println!("| proxy | RSS per idle tunnel |");
    println!("|---|---:|");
    for (i, contender) in contenders.iter().enumerate() {
        let mut sorted = bytes[i].clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.1} KB ({:.1}–{:.1}) |",
            contender.name(),
            median(&bytes[i]) / 1000.0,
            sorted[0] / 1000.0,
            sorted[sorted.len() - 1] / 1000.0
        );
    }
    Ok(())
}

/// The range of the run-by-run ratios `a[i] / b[i]` (runs are interleaved, so run i of each
/// saw the same machine).
fn spread(a: &[f64], b: &[f64]) -> String {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    format!("{low:.2}–{high:.2}")
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Every blocking wait in the benchmark is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
