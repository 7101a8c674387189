//! The environment a sandboxed command gets: every common tool pointed at the proxy inside the
//! sandbox (`127.0.0.1:PORT`, relayed to egress), and nothing that would send loopback names to
//! the sandbox's own, empty loopback.
//!
//! Most variables replace the caller's: a proxy address or a proxy exception of the caller's
//! has no route inside the sandbox (there is no network but the relay), so keeping it would only
//! turn a request into a connection failure. Two hold a caller's own settings beside the proxy
//! (`EXTENDED`): there egress-run adds to the caller's value instead (a trust store in
//! `JAVA_TOOL_OPTIONS`, a key in `GIT_SSH_COMMAND`).

use std::process::Command;

use crate::env_scrub::Scrub;

/// The proxy's port inside the sandbox.
pub const INSIDE_PORT: u16 = 3128;

/// Variables to set, in a stable order.
pub fn proxy_env(port: u16, self_exe: &str) -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{port}");
    let mut vars: Vec<(&str, String)> = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        vars.push((name, http.clone()));
    }
    // The port speaks SOCKS5 too, but `socks5h://` here stops every client without SOCKS
    // support before its first request (httpx without socksio refuses to build a client at all),
    // while an `http://` address works for every client that reads this variable (curl, git,
    // httpx, requests, pip); those that ignore it read the ones above.
    for name in ["ALL_PROXY", "all_proxy"] {
        vars.push((name, http.clone()));
    }
    // Loopback is not sent to the proxy only by name: inside the sandbox there is nothing on
    // loopback but the proxy itself, so `localhost` must go through it too (egress decides).
    for name in ["NO_PROXY", "no_proxy"] {
        vars.push((name, String::new()));
    }
    vars.push(("NODE_USE_ENV_PROXY", "1".into()));
    vars.push((
        "JAVA_TOOL_OPTIONS",
        format!(
            "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={port} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={port} -Dhttp.nonProxyHosts="
        ),
    ));
    // npm, pip and cargo read these rather than (or besides) HTTPS_PROXY.
    vars.push(("npm_config_proxy", http.clone()));
    vars.push(("npm_config_https_proxy", http.clone()));
    vars.push(("PIP_PROXY", http.clone()));
    vars.push(("CARGO_HTTP_PROXY", http.clone()));
    // git over ssh through the proxy, with egress-run's own CONNECT helper (no nc or socat).
    let port_option = if port == INSIDE_PORT {
        String::new()
    } else {
        format!(" --proxy-port {port}")
    };
    vars.push((
        "GIT_SSH_COMMAND",
        format!("ssh -o ProxyCommand='{self_exe} connect{port_option} %h %p'"),
    ));
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Variables whose caller's value egress-run keeps, adding its own after it: the JVM applies
/// the last of repeated `-D` options (the proxy's win, the caller's trust store stays); ssh
/// takes the first of repeated `-o` options, so a caller's own `ProxyCommand` wins there, and
/// fails inside the sandbox as any direct route does.
pub const EXTENDED: [&str; 2] = ["JAVA_TOOL_OPTIONS", "GIT_SSH_COMMAND"];

/// The names `proxy_env` sets that replace the caller's values (everything but `EXTENDED`).
/// The caller's values of these are neither judged by the scrub nor passed on.
pub fn names() -> Vec<String> {
    proxy_env(INSIDE_PORT, "")
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !EXTENDED.contains(&k.as_str()))
        .collect()
}

/// `ours` (from `proxy_env`) with the caller's values of the `EXTENDED` variables kept in
/// front. `caller` gives a caller's value that may be passed on (the scrub did not remove it).
pub fn merged(
    ours: Vec<(String, String)>,
    caller: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    ours.into_iter()
        .map(|(name, value)| {
            let theirs = match EXTENDED.contains(&name.as_str()) {
                true => caller(&name).filter(|v| !v.trim().is_empty()),
                false => None,
            };
            let value = match theirs {
                None => value,
                // The caller's command already names its ssh: only the options are added.
                Some(theirs) if name == "GIT_SSH_COMMAND" => {
                    format!("{theirs} {}", value.strip_prefix("ssh ").unwrap_or(&value))
                }
                Some(theirs) => format!("{theirs} {value}"),
            };
            (name, value)
        })
        .collect()
}

/// Sets the command's environment: the scrubbed variables removed, then `vars` (the proxy's,
/// from `proxy_env`) set after them, so an `EXTENDED` variable the scrub removed still gets
/// egress-run's own value.
pub fn apply(command: &mut Command, vars: Vec<(String, String)>, scrub: &Scrub) {
    for name in scrub.names() {
        command.env_remove(name);
    }
    let removed: Vec<_> = scrub.names().collect();
    let caller = |name: &str| match removed.iter().any(|r| *r == name) {
        true => None,
        false => std::env::var(name).ok(),
    };
    command.envs(merged(vars, caller));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_pointed_at_the_inside_port() {
        let env = proxy_env(3128, "/usr/bin/egress-run");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("http_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("ALL_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("NO_PROXY"), Some(""));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
        assert_eq!(get("PIP_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("CARGO_HTTP_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(
            get("JAVA_TOOL_OPTIONS"),
            Some("-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=")
        );
        assert_eq!(
            get("GIT_SSH_COMMAND"),
            Some("ssh -o ProxyCommand='/usr/bin/egress-run connect %h %p'")
        );
        assert_eq!(env.len(), 15);
    }

    #[test]
    fn another_proxy_port_reaches_the_connect_helper() {
        // macOS: no sandbox-side relay, the proxy's own port on loopback.
        let env = proxy_env(49152, "/usr/local/bin/egress-run");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ALL_PROXY"), Some("http://127.0.0.1:49152"));
        assert_eq!(
            get("GIT_SSH_COMMAND"),
            Some(
                "ssh -o ProxyCommand='/usr/local/bin/egress-run connect --proxy-port 49152 %h %p'"
            )
        );
    }

    #[test]
    fn the_callers_java_options_and_ssh_command_are_kept_in_front() {
        let caller = |name: &str| match name {
            "JAVA_TOOL_OPTIONS" => Some("-Djavax.net.ssl.trustStore=/t.jks".to_string()),
            "GIT_SSH_COMMAND" => Some("ssh -i ./deploy_key".to_string()),
            // Replaced whatever the caller had: no route but the proxy inside.
            "HTTPS_PROXY" | "NO_PROXY" => Some("http://corp:8080".to_string()),
            _ => None,
        };
        let env = merged(proxy_env(3128, "/usr/bin/egress-run"), caller);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("JAVA_TOOL_OPTIONS"),
            Some("-Djavax.net.ssl.trustStore=/t.jks -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=")
        );
        assert_eq!(
            get("GIT_SSH_COMMAND"),
            Some("ssh -i ./deploy_key -o ProxyCommand='/usr/bin/egress-run connect %h %p'")
        );
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("NO_PROXY"), Some(""));
        assert_eq!(env.len(), 15);
    }

    #[test]
    fn an_empty_or_missing_caller_value_leaves_egress_runs_own() {
        let blank = |_: &str| Some("  ".to_string());
        assert_eq!(merged(proxy_env(3128, "/e"), blank), proxy_env(3128, "/e"));
        assert_eq!(
            merged(proxy_env(3128, "/e"), |_| None),
            proxy_env(3128, "/e")
        );
    }

    #[test]
    fn extended_variables_are_not_among_the_replaced_names() {
        let replaced = names();
        assert!(replaced.contains(&"HTTPS_PROXY".to_string()));
        assert!(replaced.contains(&"NO_PROXY".to_string()));
        for name in EXTENDED {
            assert!(!replaced.contains(&name.to_string()), "{name}");
        }
        assert_eq!(replaced.len() + EXTENDED.len(), proxy_env(3128, "").len());
    }
}
