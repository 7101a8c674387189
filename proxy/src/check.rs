//! `egress-proxy check FILE`: validate and print a one-screen summary.

use std::path::Path;
use std::process::ExitCode;

use egress_config::{Config, Pattern};

pub fn run(file: &Path) -> ExitCode {
    match egress_config::load_file(file) {
        Ok(config) => {
            print!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// At most this many patterns are listed per list; the rest are counted.
const SHOWN: usize = 8;

fn summary(config: &Config) -> String {
    let policy = &config.policy;
    let listen: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{} ({})", l.address, l.protocols.as_str()))
        .collect();
    let t = &config.timeouts;
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    format!(
        "{source}: OK\n  listen:   {listen}\n  mode:     {mode}\n  allow:    {allow}\n  deny:     {deny}\n  \
         limits:   max_connections {mc}, max_connections_per_client {mpc}, max_request_head_bytes {mh}\n  \
         timeouts: request_head {rh}, handshake {hs}, dial {dial}, idle {idle}, shutdown_grace {grace}\n  \
         dns:      {dns}, timeout {dns_timeout}, cache {cache}\n  \
         guard:    {guard}\n  \
         tls:      sni {sni}, without_sni {without_sni}, ports {ports:?}\n{parents}",
        source = config.source,
        listen = listen.join(", "),
        mode = policy.mode().as_str(),
        allow = list(policy.allow()),
        deny = list(policy.deny()),
        mc = config.limits.max_connections,
        mh = config.limits.max_request_head_bytes,
        mpc = config.limits.max_connections_per_client,
        dns = match &config.dns.nameservers {
            Some(servers) => servers.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            None => "system (/etc/resolv.conf)".to_string(),
        },
        dns_timeout = secs(config.dns.timeout),
        cache = config.dns.cache_size,
        guard = if !config.address_guard.enabled {
            "OFF (private and metadata addresses are reachable)".to_string()
        } else if config.address_guard.allow_networks.is_empty() {
            "on".to_string()
        } else {
            let nets: Vec<String> = config.address_guard.allow_networks.iter().map(ToString::to_string).collect();
            format!("on, except {}", nets.join(", "))
        },
        sni = config.tls.sni.as_str(),
        without_sni = config.tls.without_sni.as_str(),
        ports = config.tls.ports,
        parents = parents(config),
        rh = secs(t.request_head),
        hs = secs(t.handshake),
        dial = secs(t.dial),
        idle = secs(t.idle),
        grace = secs(t.shutdown_grace),
    )
}

/// The route and each parent, passwords never shown (only whether one is set).
fn parents(config: &Config) -> String {
    let routing = &config.routing;
    let mut out = format!(
        "  route:    default {}, direct {}\n",
        routing.default.as_str(),
        list(&routing.direct)
    );
    for upstream in &routing.upstreams {
        let password = if upstream.password.is_some() {
            ", password set"
        } else {
            ""
        };
        let fallback = if upstream.fallback.is_empty() {
            String::new()
        } else {
            format!(", fallback {}", upstream.fallback.join(" → "))
        };
        let secure = egress_config::upstream::secure::summary(upstream);
        out.push_str(&format!(
            "  upstream: {} = {}{password}{secure}{fallback}, health check every {}s\n",
            upstream.name,
            upstream.display_url(),
            upstream.health_check.as_secs_f64()
        ));
    }
    out
}

fn list(patterns: &[Pattern]) -> String {
    let shown: Vec<&str> = patterns.iter().take(SHOWN).map(Pattern::text).collect();
    let mut out = format!("{} entries", patterns.len());
    if !shown.is_empty() {
        out.push_str(": ");
        out.push_str(&shown.join(", "));
    }
    if patterns.len() > SHOWN {
        out.push_str(&format!(", … ({} more)", patterns.len() - SHOWN));
    }
    out
}
