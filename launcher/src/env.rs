//! The environment a sandboxed command gets: every common tool pointed at the proxy inside the
//! sandbox (`127.0.0.1:PORT`, relayed to egress), and nothing that would send loopback names to
//! the sandbox's own, empty loopback.

/// The proxy's port inside the sandbox.
pub const INSIDE_PORT: u16 = 3128;

/// Variables to set, in a stable order.
pub fn proxy_env(port: u16, self_exe: &str) -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{port}");
    let socks = format!("socks5h://127.0.0.1:{port}");
    let mut vars: Vec<(&str, String)> = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        vars.push((name, http.clone()));
    }
    for name in ["ALL_PROXY", "all_proxy"] {
        vars.push((name, socks.clone()));
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

/// The names `proxy_env` sets: the caller's values of these are replaced, not removed.
pub fn names() -> Vec<String> {
    proxy_env(INSIDE_PORT, "")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
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
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:3128"));
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
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:49152"));
        assert_eq!(
            get("GIT_SSH_COMMAND"),
            Some(
                "ssh -o ProxyCommand='/usr/local/bin/egress-run connect --proxy-port 49152 %h %p'"
            )
        );
    }
}
