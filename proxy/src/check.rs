//! `egress-proxy check FILE`: validate and print a one-screen summary.

use std::path::Path;
use std::process::ExitCode;

use egress_config::{parse_authority, Config, Pattern, Protocol, Request, ANONYMOUS};

pub fn run(file: &Path, identity: Option<&str>, target: Option<&str>) -> ExitCode {
    match egress_config::load_file(file) {
        Ok(config) => match target {
            Some(target) => decide(&config, identity.unwrap_or(ANONYMOUS), target),
            None => {
                print!("{}", summary(&config));
                // The process ends here: freeing a large policy entry by entry (a million
                // allocations) would only add to the time `check` takes.
                std::mem::forget(config);
                ExitCode::SUCCESS
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `check FILE --as IDENTITY HOST[:PORT]`: the decision for one identity and one target, as a
/// CONNECT or SOCKS5 client would get it (port 443 when none is given). Exit 0 whatever the
/// decision; 2 when the identity or the target cannot be used.
fn decide(config: &Config, identity: &str, target: &str) -> ExitCode {
    if identity != ANONYMOUS && config.identities.known(identity).is_none() {
        let names = config.identities.names();
        eprintln!(
            "unknown identity {identity:?} (configured: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        return ExitCode::from(2);
    }
    let (host, port) = match parse_authority(target) {
        Ok((host, port)) => (host, port.unwrap_or(443)),
        Err(e) => {
            eprintln!("invalid target {target:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = config.policy_for(identity);
    let verdict = policy.decide(&Request {
        host: &host,
        port,
        protocol: Protocol::HttpConnect,
    });
    let mut line = format!(
        "{identity} -> {}: {}",
        host.authority(port),
        verdict.decision()
    );
    if let Some(reason) = verdict.reason() {
        line.push_str(&format!(" ({reason})"));
    }
    match verdict.rule {
        Some(rule) => line.push_str(&format!(", rule \"{rule}\"")),
        None => line.push_str(", no rule matched"),
    }
    line.push_str(&format!(", mode {}", policy.mode().as_str()));
    println!("{line}");
    ExitCode::SUCCESS
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
         tls:      sni {sni}, without_sni {without_sni}, ports {ports:?}\n{parents}{identities}",
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
        identities = identities(config),
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

/// Logins and identities, when configured: counts and names, never a hash.
fn identities(config: &Config) -> String {
    let ids = &config.identities;
    let names = ids.names();
    if names.is_empty() && !ids.logins() {
        return String::new();
    }
    let auth = match &ids.auth.users_file {
        Some(file) => format!(
            "users file {} ({} users){}",
            file.display(),
            ids.users.names().count(),
            if ids.auth.required {
                ", login required"
            } else {
                ""
            }
        ),
        None => "no logins".to_string(),
    };
    let shown: Vec<&str> = names.iter().take(SHOWN).copied().collect();
    format!(
        "  auth:     {auth}\n  identities: {}{}\n",
        shown.join(", "),
        if names.len() > SHOWN {
            format!(", … ({} more)", names.len() - SHOWN)
        } else {
            String::new()
        }
    )
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
