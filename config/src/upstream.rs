//! Parent proxies (`upstreams:`) and which traffic goes through them (`route:`, an allow entry's
//! `via:`). Credentials live in `Secret`, which never prints.

use std::fmt;
use std::time::Duration;

use crate::host::{parse_authority, Host};
use crate::pattern::Pattern;

pub mod secure;
pub use secure::{AuthScheme, Negotiate, ParentTls};

/// A password or other credential: `Debug` and `Display` print `***`, so a configuration, an
/// error or a log line holding one cannot leak it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How egress talks to a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// `CONNECT host:port` for tunnels, absolute-form requests for plain HTTP.
    Http,
    /// SOCKS5 with the destination as a name (the parent resolves it), RFC 1929 credentials.
    Socks5,
}

impl UpstreamKind {
    pub const fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Socks5 => "socks5",
        }
    }
}

/// One named parent proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    pub host: Host,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The file the password was read from (`password_file`), for what must keep it private:
    /// egress-run masks it inside its sandbox.
    pub password_file: Option<std::path::PathBuf>,
    /// Tried in this order when this parent is down or unreachable.
    pub fallback: Vec<String>,
    /// How often a parent is probed (a TCP connect) to mark it up or down.
    pub health_check: Duration,
    /// `Some` for an `https://` parent: the connection to it is TLS.
    pub tls: Option<ParentTls>,
    /// `Some` for `auth: negotiate`: Kerberos instead of user and password.
    pub negotiate: Option<Negotiate>,
}

impl Upstream {
    /// `http://user@host:port`: the URL without its password, for logs and `check`.
    pub fn display_url(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let scheme = match (self.kind, &self.tls) {
            (UpstreamKind::Http, Some(_)) => "https",
            (kind, _) => kind.scheme(),
        };
        format!("{scheme}://{user}{}", self.host.authority(self.port))
    }
}

/// Where an allowed connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteChoice {
    #[default]
    Direct,
    Upstream(String),
}

impl RouteChoice {
    pub fn parse(name: &str) -> RouteChoice {
        if name == DIRECT {
            RouteChoice::Direct
        } else {
            RouteChoice::Upstream(name.to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RouteChoice::Direct => DIRECT,
            RouteChoice::Upstream(name) => name,
        }
    }
}

/// The reserved route name for "no parent".
pub const DIRECT: &str = "direct";

/// All parents and the routing between them and `direct`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    /// By name, sorted.
    pub upstreams: Vec<Upstream>,
    /// For allowed traffic that no `via:` and no `direct` entry routes.
    pub default: RouteChoice,
    /// Destinations that never go through a parent.
    pub direct: Vec<Pattern>,
}

impl Routing {
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The route for an allowed target: the allow entry's own `via` first, then `route.direct`,
    /// then `route.default`.
    pub fn choose(&self, via: Option<&str>, host: &Host) -> RouteChoice {
        if let Some(via) = via {
            return RouteChoice::parse(via);
        }
        if self.direct.iter().any(|p| p.matches_host(host)) {
            return RouteChoice::Direct;
        }
        self.default.clone()
    }

    /// The parents to try for a route, in order: the named one, then its fallbacks.
    pub fn chain(&self, name: &str) -> Vec<&Upstream> {
        let Some(first) = self.upstream(name) else {
            return Vec::new();
        };
        let mut chain = vec![first];
        chain.extend(first.fallback.iter().filter_map(|n| self.upstream(n)));
        chain
    }
}

/// An upstream URL as written: `http://[user[:password]@]host[:port]` or `socks5://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub kind: UpstreamKind,
    pub host: Host,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Written `https://`: TLS to the parent.
    pub tls: bool,
}

/// Parses an upstream URL. Errors never repeat the password: they quote `masked(text)`.
pub fn parse_upstream_url(text: &str) -> Result<UpstreamUrl, (String, Option<&'static str>)> {
    let shown = masked(text);
    let hint =
        Some("write http://[user@]host:port, https://host:port or socks5://[user@]host:port");
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err((format!("{shown:?} is not a URL"), hint));
    };
    let (kind, default_port, tls) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (UpstreamKind::Http, 3128, false),
        // A TLS parent (Squid's https_port); 443 as for any https URL.
        "https" => (UpstreamKind::Http, 443, true),
        "socks5" | "socks5h" => (UpstreamKind::Socks5, 1080, false),
        other => return Err((format!("{shown:?}: unknown scheme {other:?}"), hint)),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err((format!("{shown:?}: a parent proxy URL has no path"), hint));
    }
    let (userinfo, authority) = match rest.rsplit_once('@') {
        Some((userinfo, authority)) => (Some(userinfo), authority),
        None => (None, rest),
    };
    let (host, port) = parse_authority(authority).map_err(|e| (format!("{shown:?}: {e}"), hint))?;
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = percent_decode(user).ok_or_else(|| {
                (
                    format!("{shown:?}: invalid %-escape in the user name"),
                    None,
                )
            })?;
            let password = match password {
                None => None,
                Some(p) => Some(Secret::new(percent_decode(p).ok_or_else(|| {
                    (format!("{shown:?}: invalid %-escape in the password"), None)
                })?)),
            };
            if user.is_empty() {
                return Err((format!("{shown:?}: empty user name"), None));
            }
            (Some(user), password)
        }
    };
    Ok(UpstreamUrl {
        kind,
        host,
        port: port.unwrap_or(default_port),
        user,
        password,
        tls,
    })
}

/// The URL with any password replaced by `***`, safe to show.
pub fn masked(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, authority)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let secret = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{secret}@{authority}")
        }
        None => text.to_string(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
