//! Decisions against a policy of a million allow names (exact, `.domain` and `*.domain` mixed,
//! some with ports), 10,000 deny names and 10,000 allow CIDRs — the shape bench/bigpolicy.sh
//! writes. Not a test.
//!
//!   cargo bench -p egress-config --bench matcher
//!
//! Criterion times a few fixed targets; then every decision over 200,000 different targets is
//! timed on its own and the percentiles are printed (criterion gives means, the target is a p99).

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use egress_config::{Host, Policy, Protocol, Request};

/// xorshift64*: the same policy on every run, without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn label(&mut self) -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let length = 3 + self.below(10);
        let first = LETTERS[self.below(26)] as char;
        let rest = (1..length).map(|_| LETTERS[self.below(LETTERS.len())] as char);
        std::iter::once(first).chain(rest).collect()
    }
}

/// The policy, and some of its entries to aim at.
struct Big {
    policy: Policy,
    exact: Vec<String>,
    domains: Vec<String>,
    subdomains: Vec<String>,
    networks: Vec<(u32, u8)>,
}

fn big_policy() -> Big {
    let mut random = Random(20);
    const TLDS: [&str; 8] = ["com", "net", "org", "io", "dev", "example", "co.uk", "de"];
    let bases: Vec<String> = (0..5000)
        .map(|_| format!("{}.{}", random.label(), TLDS[random.below(TLDS.len())]))
        .collect();
    let name = |random: &mut Random, depth: usize| {
        let mut labels: Vec<String> = (0..depth).map(|_| random.label()).collect();
        labels.push(bases[random.below(bases.len())].clone());
        labels.join(".")
    };
    const PORTS: [&str; 11] = [
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        ":443",
        ":80,443",
        ":8000-8999",
        ":*",
    ];
    let mut yaml = String::from("listen: 127.0.0.1:3128\nmode: enforce\nallow:\n");
    let (mut exact, mut domains, mut subdomains, mut networks) = (vec![], vec![], vec![], vec![]);
    for i in 0..1_000_000 {
        let depth = 1 + random.below(3);
        let host = name(&mut random, depth);
        let ports = PORTS[random.below(PORTS.len())];
        let prefix = ["", ".", "*."][i % 3];
        writeln!(yaml, "  - \"{prefix}{host}{ports}\"").unwrap();
        let list = match i % 3 {
            0 => &mut exact,
            1 => &mut domains,
            _ => &mut subdomains,
        };
        if ports.is_empty() && list.len() < 100_000 {
            list.push(host);
        }
    }
    for i in 0..10_000 {
        if i % 10 == 9 {
            let (a, b) = (random.below(256), random.below(65536));
            writeln!(yaml, "  - \"fd{a:02x}:{b:x}::/48\"").unwrap();
        } else {
            let address =
                ((1 + random.below(223)) as u32) << 24 | (random.below(1 << 16) as u32) << 8;
            let length = [16u8, 20, 24, 28, 32][random.below(5)];
            let network = address & (u32::MAX << (32 - length));
            writeln!(yaml, "  - {}/{length}", std::net::Ipv4Addr::from(network)).unwrap();
            networks.push((network, length));
        }
    }
    yaml.push_str("deny:\n");
    for i in 0..10_000 {
        let depth = 1 + random.below(2);
        let host = name(&mut random, depth);
        writeln!(yaml, "  - \"{}{host}\"", ["", ".", "*."][i % 3]).unwrap();
    }
    let started = Instant::now();
    let config = egress_config::load_str(&yaml, "<bench>").expect("the generated policy is valid");
    eprintln!(
        "loaded {} allow and {} deny entries ({} MB of YAML) in {:?}",
        config.policy.allow().len(),
        config.policy.deny().len(),
        yaml.len() / 1_000_000,
        started.elapsed()
    );
    Big {
        policy: config.policy,
        exact,
        domains,
        subdomains,
        networks,
    }
}

fn decide(policy: &Policy, host: &Host) -> bool {
    let verdict = policy.decide(&Request {
        host,
        port: 443,
        protocol: Protocol::HttpConnect,
    });
    verdict.action == egress_config::Action::Allow
}

fn host(text: &str) -> Host {
    Host::parse(text).expect("a valid target")
}

fn fixed_targets(c: &mut Criterion, big: &Big) {
    let (network, _) = big.networks[0];
    let targets = [
        ("exact hit", host(&big.exact[0]), true),
        (
            "hit via a parent .domain",
            host(&format!("a.b.{}", big.domains[0])),
            true,
        ),
        (
            "hit via *.domain",
            host(&format!("www.{}", big.subdomains[0])),
            true,
        ),
        (
            "miss, 9 labels",
            host("a.b.c.d.e.f.g.nothing-here.example"),
            false,
        ),
        (
            "IPv4 in one of 9,000 CIDRs",
            Host::Ip(std::net::Ipv4Addr::from(network | 1).into()),
            true,
        ),
        ("IPv4 miss", host("192.0.2.1"), false),
    ];
    let mut group = c.benchmark_group("decide");
    for (name, target, allowed) in &targets {
        assert_eq!(decide(&big.policy, target), *allowed, "{name}");
        group.bench_function(*name, |b| b.iter(|| decide(&big.policy, black_box(target))));
    }
    group.finish();
}

/// Each decision timed on its own over many different targets (a quarter hits of each kind,
/// the rest misses with 2-8 labels and random IPv4 addresses), so caches are not warm for one.
fn percentiles(big: &Big) {
    let mut random = Random(7);
    let targets: Vec<Host> = (0..200_000)
        .map(|i| match i % 8 {
            0 => host(&big.exact[random.below(big.exact.len())]),
            1 => host(&format!(
                "{}.{}",
                random.label(),
                big.domains[random.below(big.domains.len())]
            )),
            2 => host(&format!(
                "{}.{}",
                random.label(),
                big.subdomains[random.below(big.subdomains.len())]
            )),
            3 => {
                let (network, length) = big.networks[random.below(big.networks.len())];
                let host_bits = (random.next() as u32)
                    .checked_shr(u32::from(length))
                    .unwrap_or(0);
                Host::Ip(std::net::Ipv4Addr::from(network | host_bits).into())
            }
            4 => Host::Ip(std::net::Ipv4Addr::from(random.next() as u32).into()),
            _ => {
                let labels: Vec<String> =
                    (0..2 + random.below(7)).map(|_| random.label()).collect();
                host(&labels.join("."))
            }
        })
        .collect();
    // The cost of reading the clock, taken off each sample.
    let clock = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed()
        })
        .min()
        .unwrap_or_default();
    let mut samples: Vec<Duration> = Vec::with_capacity(targets.len());
    let mut allowed = 0;
    for _ in 0..2 {
        samples.clear();
        for target in &targets {
            let started = Instant::now();
            allowed += usize::from(decide(&big.policy, black_box(target)));
            samples.push(started.elapsed().saturating_sub(clock));
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "decide over {} different targets ({} allowed, clock cost {:?} taken off): \
         p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        targets.len(),
        allowed / 2,
        clock,
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}

fn main() {
    let big = big_policy();
    let mut criterion = Criterion::default().configure_from_args();
    fixed_targets(&mut criterion, &big);
    criterion.final_summary();
    percentiles(&big);
}
