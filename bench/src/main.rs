//! `egress-bench`: the same loopback workloads straight to the server, through egress-proxy, and
//! through Squid and tinyproxy when they are installed, interleaved run by run so that machine
//! noise hits every contender alike. Reports medians and ratios to direct.
//!
//! Workloads (all on 127.0.0.1, bounded in bytes and count):
//! - bulk: one tunnel, the server sends `--bytes`, the client counts them (MiB/s);
//! - tunnels: `--tunnels` short tunnels from `--workers` threads, each one byte echoed (per s).
//!
//! With Squid installed, egress chained to that Squid (`egress→squid`) runs too, and its ratio
//! to Squid alone is printed: the cost of filtering in front of a corporate parent.

mod contenders;
mod idle;
mod servers;
mod workloads;

use std::time::Duration;

use clap::Parser;

use contenders::Contender;

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
    /// Tunnels per tunnel-rate run.
    #[arg(long, default_value_t = 2000)]
    tunnels: usize,
    /// Client threads opening tunnels concurrently.
    #[arg(long, default_value_t = 4)]
    workers: usize,
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
    if let Some(count) = args.idle {
        return idle_memory(&args, count);
    }
    let source = servers::source(args.bytes)?;
    let echo = servers::echo()?;
    let mut contenders = if let Some(subscribers) = args.embedded_only {
        vec![
            Contender::Direct,
            contenders::embedded(&[source, echo], subscribers, args.subscriber_work)?,
        ]
    } else if args.auth {
        vec![
            Contender::Direct,
            contenders::egress(&args.egress, &[source, echo])?,
            contenders::egress_auth(&args.egress, &[source, echo])?,
        ]
    } else if args.subscriber {
        vec![
            Contender::Direct,
            contenders::embedded(&[source, echo], 0, args.subscriber_work)?,
            contenders::embedded(&[source, echo], 1, args.subscriber_work)?,
        ]
    } else {
        let mut list = vec![
            Contender::Direct,
            contenders::egress(&args.egress, &[source, echo])?,
            contenders::egress_observed(&args.egress, &[source, echo])?,
        ];
        if let Some(previous) = &args.previous {
            list.push(contenders::egress_previous(previous, &[source, echo])?);
        }
        if args.console {
            list.push(contenders::egress_console(&args.egress, &[source, echo])?);
        }
        list
    };
    if !(args.egress_only || args.subscriber || args.auth || args.embedded_only.is_some()) {
        if let Some(squid) = contenders::squid()? {
            // egress chained to that same Squid, against Squid alone: the cost of filtering in
            // front of a corporate parent.
            let parent = squid.addr().expect("a proxy has an address");
            contenders.push(squid);
            contenders.push(contenders::egress_via(
                &args.egress,
                &[source, echo],
                parent,
            )?);
        }
        contenders.extend(contenders::tinyproxy()?);
    }
    let mut bulk: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut rate: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for run in 0..args.runs {
        // A different order each run, so no contender always follows the same one (a machine
        // that slows down or speeds up over a run would otherwise favour a position).
        for k in 0..contenders.len() {
            let i = (k + run) % contenders.len();
            let contender = &contenders[i];
            let mib_s = workloads::bulk(contender, source, args.bytes)?;
            let per_s = workloads::tunnel_rate(contender, echo, args.tunnels, args.workers)?;
            eprintln!(
                "run {}: {:<10} bulk {:>8.0} MiB/s   tunnels {:>7.0}/s",
                run + 1,
                contender.name(),
                mib_s,
                per_s
            );
            bulk[i].push(mib_s);
            rate[i].push(per_s);
        }
    }
    let direct_bulk = median(&bulk[0]);
    let direct_rate = median(&rate[0]);
    println!(
        "\n{} runs, bulk {} MiB per transfer, {} tunnels per run from {} workers (medians)\n",
        args.runs,
        args.bytes >> 20,
        args.tunnels,
        args.workers
    );
    println!("| contender | bulk MiB/s | vs direct | new tunnels/s | vs direct |");
    println!("|---|---:|---:|---:|---:|");
    for (i, contender) in contenders.iter().enumerate() {
        let (b, r) = (median(&bulk[i]), median(&rate[i]));
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} |",
            contender.name(),
            b,
            b / direct_bulk,
            r,
            r / direct_rate
        );
    }
    let position = |name: &str| contenders.iter().position(|c| c.name() == name);
    let compare = |label: &str, a: &str, b: &str| {
        let (Some(a), Some(b)) = (position(a), position(b)) else {
            return;
        };
        println!(
            "\n{label}: bulk {:.3} (spread {}), new tunnels {:.3} (spread {})",
            median(&bulk[a]) / median(&bulk[b]),
            spread(&bulk[a], &bulk[b]),
            median(&rate[a]) / median(&rate[b]),
            spread(&rate[a], &rate[b]),
        );
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
    drop(contenders);
    Ok(())
}

/// `--idle`: bytes of RSS per idle tunnel, contenders interleaved in a rotated order each run.
fn idle_memory(args: &Args, count: usize) -> anyhow::Result<()> {
    let origin = idle::HoldOrigin::start()?;
    let mut contenders = vec![contenders::egress(&args.egress, &[origin.addr])?];
    if let Some(previous) = &args.previous {
        contenders.push(contenders::egress_previous(previous, &[origin.addr])?);
    }
    if !args.egress_only {
        contenders.extend(contenders::squid()?);
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
