//! What the user asked for, and the parts of it every platform's runner checks the same way:
//! the proxy (a policy that loads, or a proxy URL that parses) and absolute paths.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::policy;

/// What the user asked for.
#[derive(Debug)]
pub struct Request {
    pub proxy: Option<String>,
    pub policy: Option<PathBuf>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_write: Vec<PathBuf>,
    pub deny_read: Vec<PathBuf>,
    pub srt_settings: Option<PathBuf>,
    pub read_only: bool,
    pub quiet: bool,
    pub command: Vec<OsString>,
}

/// The proxy the request names, checked: a policy that loads, or a proxy URL that parses.
pub fn prepare(request: &Request) -> anyhow::Result<Proxy> {
    Ok(match &request.proxy {
        Some(url) => Proxy::Running(parse_proxy_url(url)?),
        None => Proxy::Embedded(Box::new(policy::build(
            request.policy.as_deref(),
            &request.allow,
            &request.deny,
        )?)),
    })
}

/// Where the sandbox's connections go.
#[derive(Debug)]
pub enum Proxy {
    /// A proxy in this process, from this configuration; it has no listening port.
    Embedded(Box<egress_config::Config>),
    /// An egress-proxy already running at this address.
    Running(SocketAddr),
}

/// `--proxy http://host:port` of an egress-proxy that is already running.
pub fn parse_proxy_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if rest.contains('@') {
        bail!("--proxy takes no credentials in the URL (they would show in ps); set EGRESS_PROXY_PASSWORD instead");
    }
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .with_context(|| format!("--proxy {url}"))?
        .next()
        .with_context(|| format!("--proxy {url}: no address"))
}

/// Absolute, and with links resolved where the path exists: bwrap binds what a path resolves
/// to, and the protected-path check compares resolved prefixes.
pub fn absolute(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    Ok(paths
        .iter()
        .map(|p| {
            let joined = if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            };
            joined.canonicalize().unwrap_or(joined)
        })
        .collect())
}
