//! From YAML text to a validated `Config`, with errors that name file, line, column and the YAML
//! path of the offending value, plus a hint where one helps.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::raw::{
    AllowList, DurationEntry, ListenList, PatternEntry, RawAddressGuard, RawDns, RawFile,
    RawLimits, RawRoute, RawTimeouts, RawTls, RawUpstream, UpstreamName, HINT_SEPARATOR,
};
use crate::secrets::{self, Secrets};
use crate::settings::{
    AddressGuardSettings, Admin, Audit, Config, Dns, DnsServer, Limits, Listener,
    ListenerProtocols, Timeouts, TlsInspection,
};
use crate::upstream::{RouteChoice, Routing, Upstream, DIRECT};
use crate::{Mode, Policy};

/// The built-in policy `egress-proxy` runs when given no file.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../default-policy.yaml");

const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    3128,
));

/// A configuration that cannot be used, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// A file path, or `<embedded default>`.
    pub origin: String,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    /// Where in the document, like `allow[3]` or `timeouts.dial`; empty for the whole file.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "at {}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Reads and loads a policy file.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_owned(read_file(path)?, &path.display().to_string())
}

/// A policy file's text, or the error `load_file` gives when it cannot be read.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: path.display().to_string(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read the file: {e}"),
        hint: None,
    })
}

/// `load_str` of a text that is no longer needed once parsed: it is freed before the policy is
/// compiled, so a large file's text and its index are never in memory at once.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
pub fn load_owned(text: String, origin: &str) -> Result<Config, ConfigError> {
    let raw = parse(&text, origin, lists::lift)?;
    drop(text);
    finish(raw, origin)
}

/// The embedded default policy.
pub fn default_config() -> Config {
    load_str(DEFAULT_POLICY_YAML, "<embedded default>")
        .expect("the embedded default policy is valid")
}

/// Loads a policy from YAML text; `origin` names it in errors and logs.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    load_with(text, origin, lists::lift)
}

/// `load_str`, with the reader of long lists as a parameter, so tests can compare loading with
/// and without it.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
fn load_with(
    text: &str,
    origin: &str,
    lift: fn(&str) -> Option<lists::Lifted>,
) -> Result<Config, ConfigError> {
    finish(parse(text, origin, lift)?, origin)
}

/// The file as read, before anything outside it (secrets, users) is.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
fn parse(
    text: &str,
    origin: &str,
    lift: fn(&str) -> Option<lists::Lifted>,
) -> Result<RawFile, ConfigError> {
    Ok(if is_blank(text) {
        RawFile::default()
    } else {
        let lifted = lift(text);
        let yaml = lifted.as_ref().map_or(text, |l| l.rest.as_str());
        let deserializer = serde_yaml_ng::Deserializer::from_str(yaml);
        // Positions are the same in both texts; `text` is the one the user has.
        let mut raw = serde_path_to_error::deserialize::<_, RawFile>(deserializer)
            .map_err(|e| to_config_error(e, text, origin))?;
        if let Some(lifted) = lifted {
            lifted.restore(&mut raw);
        }
        raw
    })
}

/// A parsed file checked, its secrets read and compiled.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
fn finish(mut raw: RawFile, origin: &str) -> Result<Config, ConfigError> {
    check_routes(&raw, origin)?;
    // Only a valid file's secrets are read.
    let secrets = secrets::read(&raw).map_err(|e| ConfigError {
        origin: origin.to_string(),
        line: None,
        column: None,
        path: e.path,
        message: e.message,
        hint: e.hint.map(str::to_string),
    })?;
    let identity_parts = identities::RawParts {
        auth: raw.auth.take(),
        identities: std::mem::take(&mut raw.identities),
        groups: std::mem::take(&mut raw.groups),
    };
    let mut config = compile(raw, secrets, origin);
    // After the base policy is compiled: each identity's policy is composed from it. The users
    // file is read here, so a reload reads it again, and a broken one keeps the old users.
    config.identities =
        identities::compile(identity_parts, &config.policy, origin).map_err(|e| ConfigError {
            origin: e
                .file
                .map_or_else(|| origin.to_string(), |f| f.display().to_string()),
            line: e.line,
            column: None,
            path: e.path,
            message: e.message,
            hint: e.hint,
        })?;
    // A listener's identity must be configured: it becomes a label and a policy like any other.
    for listener in &config.listeners {
        let Some(name) = &listener.identity else {
            continue;
        };
        if config.identities.known(name).is_none() {
            return Err(ConfigError {
                origin: origin.to_string(),
                line: None,
                column: None,
                path: "listen".into(),
                message: format!(
                    "listener {}: identity {name:?} is not configured",
                    listener.address
                ),
                hint: Some(format!(
                    "add it under identities (`{name}: {{groups: [...]}}`), or name a user"
                )),
            });
        }
    }
    Ok(config)
}

/// What serde cannot see: names that must refer to a defined upstream, and one password source.
#[allow(
    clippy::result_large_err,
    reason = "loading is a cold path; a flat error is easier to match on"
)]
fn check_routes(raw: &RawFile, origin: &str) -> Result<(), ConfigError> {
    let fail = |path: String, message: String, hint: Option<&str>| ConfigError {
        origin: origin.to_string(),
        line: None,
        column: None,
        path,
        message,
        hint: hint.map(str::to_string),
    };
    let defined = |name: &UpstreamName| name.0 == DIRECT || raw.upstreams.contains_key(name);
    let known = || {
        let mut names: Vec<&str> = raw.upstreams.keys().map(|n| n.0.as_str()).collect();
        names.push(DIRECT);
        format!("defined: {}", names.join(", "))
    };
    for (name, upstream) in &raw.upstreams {
        let path = format!("upstreams.{}", name.0);
        if name.0 == DIRECT {
            return Err(fail(
                path,
                "\"direct\" is reserved for \"no parent\"".into(),
                None,
            ));
        }
        let sources = [
            upstream.url.0.password.is_some(),
            upstream.password_env.is_some(),
            upstream.password_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(fail(
                path,
                "the password is given more than once (url, password_env, password_file)".into(),
                Some("keep one: password_env or password_file keep it out of the file"),
            ));
        }
        if sources.iter().any(|s| *s) && upstream.url.0.user.is_none() {
            return Err(fail(
                format!("{path}.url"),
                "a password needs a user name in the url".into(),
                Some("write http://user@host:port"),
            ));
        }
        if let Err((key, message, hint)) = upstream.secure().check() {
            return Err(fail(format!("{path}.{key}"), message, hint));
        }
        for (i, next) in upstream.fallback.iter().enumerate() {
            if next == name || next.0 == DIRECT || !raw.upstreams.contains_key(next) {
                return Err(fail(
                    format!("{path}.fallback[{i}]"),
                    format!("{:?} is not another defined upstream", next.0),
                    Some(&known()),
                ));
            }
        }
    }
    if let Some(default) = &raw.route.default {
        if !defined(default) {
            return Err(fail(
                "route.default".into(),
                format!("unknown upstream {:?}", default.0),
                Some(&known()),
            ));
        }
    }
    for (i, via) in &raw.allow.via {
        if !defined(via) {
            return Err(fail(
                format!("allow[{i}].via"),
                format!("unknown upstream {:?}", via.0),
                Some(&known()),
            ));
        }
    }
    Ok(())
}

/// Only comments, blank lines and document markers: every default applies.
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

fn to_config_error(
    error: serde_path_to_error::Error<serde_yaml_ng::Error>,
    source: &str,
    origin: &str,
) -> ConfigError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let location = inner.location();
    let text = inner.to_string();
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let text = match text.find(" at line ") {
        Some(cut) => &text[..cut],
        None => &text[..],
    };
    // serde_yaml also prefixes the enclosing map's path ("allow: …"); the path is reported apart.
    let prefixes = path
        .match_indices(['.', '['])
        .map(|(i, _)| &path[..i])
        .chain([path.as_str()]);
    let text = prefixes
        .filter(|p| !p.is_empty() && *p != ".")
        .find_map(|p| text.strip_prefix(p).and_then(|t| t.strip_prefix(": ")))
        .unwrap_or(text);
    let (message, hint) = match text.split_once(HINT_SEPARATOR) {
        Some((message, hint)) => (message.to_string(), Some(hint.to_string())),
        None => (text.to_string(), unknown_key_hint(text)),
    };
    let position = location.map(|l| within(source, l.line(), l.column()));
    ConfigError {
        origin: origin.to_string(),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        path: if path == "." { String::new() } else { path },
        message,
        hint,
    }
}

/// The YAML parser reports an error at the end of a file without a final newline one line past
/// the end; an editor cannot go there, so such a position becomes the end of the last line.
fn within(source: &str, line: usize, column: usize) -> (usize, usize) {
    // YAML breaks lines at LF, CRLF and a lone CR alike.
    let normalised = source.replace("\r\n", "\n").replace('\r', "\n");
    let last = normalised.split('\n').count();
    if line <= last {
        return (line, column);
    }
    let end = normalised.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (last, end)
}

/// For `unknown field `dail`, expected one of ...`: suggest the closest valid key.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .min_by_key(|candidate| edit_distance(key, candidate))?;
    (edit_distance(key, best) <= 2).then(|| format!("did you mean `{best}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The configuration a validated file describes, with the secrets it names.
fn compile(raw: RawFile, mut secrets: Secrets, origin: &str) -> Config {
    Config {
        listeners: listeners(raw.listen),
        limits: limits(&raw.limits),
        timeouts: timeouts(raw.timeouts),
        policy: policy(raw.mode, raw.allow, raw.deny),
        source: origin.to_string(),
        dns: dns(raw.dns),
        dns_server: raw.dns_server.map(|d| DnsServer { listen: d.listen }),
        address_guard: address_guard(raw.address_guard),
        tls: tls(raw.tls),
        routing: routing(raw.upstreams, raw.route, &mut secrets),
        admin: raw.admin.map(|a| admin(a, &mut secrets)),
        audit: raw.audit.map(|a| Audit {
            path: (a.path != "-").then(|| std::path::PathBuf::from(a.path)),
            buffer: a.buffer.map_or(8192, |b| b.0),
        }),
        identities: crate::identity::Identities::default(),
        ask: crate::settings::Ask {
            timeout: raw
                .ask
                .timeout
                .map_or(crate::settings::Ask::default().timeout, |d| d.0),
        },
    }
}

fn admin(raw: crate::raw::AdminEntry, secrets: &mut Secrets) -> Admin {
    Admin {
        listen: raw.listen,
        allow_remote: raw.allow_remote,
        blocked_domains_cap: raw.blocked_domains_cap.unwrap_or(1000),
        token_file: raw.token_file,
        tokens: raw
            .tokens
            .into_iter()
            .filter_map(|(name, token)| {
                // `secrets::read` read every named token or failed the load.
                let value = secrets.take_token(&name)?;
                Some(crate::admin::NamedToken {
                    name,
                    role: token.role,
                    token: value,
                })
            })
            .collect(),
        events_ring: raw.events_ring.unwrap_or(crate::admin::DEFAULT_EVENTS_RING),
    }
}

fn listeners(listen: Option<ListenList>) -> Vec<Listener> {
    listen.map_or_else(
        || vec![Listener::plain(DEFAULT_LISTEN, ListenerProtocols::Mixed)],
        |l| l.0,
    )
}

fn limits(raw: &RawLimits) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_connections: raw
            .max_connections
            .map_or(defaults.max_connections, |b| b.0),
        max_request_head_bytes: raw
            .max_request_head_bytes
            .map_or(defaults.max_request_head_bytes, |b| b.0),
        max_connections_per_client: raw
            .max_connections_per_client
            .map_or(defaults.max_connections_per_client, |b| b.0),
    }
}

fn timeouts(raw: RawTimeouts) -> Timeouts {
    let defaults = Timeouts::default();
    let pick = |value: Option<DurationEntry>, default| value.map_or(default, |d| d.0);
    Timeouts {
        request_head: pick(raw.request_head, defaults.request_head),
        handshake: pick(raw.handshake, defaults.handshake),
        dial: pick(raw.dial, defaults.dial),
        idle: pick(raw.idle, defaults.idle),
        shutdown_grace: pick(raw.shutdown_grace, defaults.shutdown_grace),
    }
}

fn policy(mode: Option<Mode>, allow: AllowList, deny: Vec<PatternEntry>) -> Policy {
    Policy::routed(
        mode.unwrap_or(Mode::Enforce),
        allow.patterns,
        allow.via.into_iter().map(|(i, via)| (i, via.0)).collect(),
        deny.into_iter().map(|p| p.0).collect(),
    )
}

fn dns(raw: RawDns) -> Dns {
    let defaults = Dns::default();
    Dns {
        nameservers: raw
            .nameservers
            .map(|list| list.into_iter().map(|n| n.0).collect()),
        timeout: raw.timeout.map_or(defaults.timeout, |d| d.0),
        cache_size: raw.cache_size.map_or(defaults.cache_size, |b| b.0),
    }
}

fn address_guard(raw: RawAddressGuard) -> AddressGuardSettings {
    AddressGuardSettings {
        enabled: raw.enabled.unwrap_or(true),
        allow_networks: raw.allow_networks.into_iter().map(|n| n.0).collect(),
    }
}

fn tls(raw: RawTls) -> TlsInspection {
    TlsInspection {
        sni: raw.sni.unwrap_or_default(),
        without_sni: raw.without_sni.unwrap_or_default(),
        ports: raw.ports.map_or_else(
            || TlsInspection::default().ports,
            |ports| ports.into_iter().map(|p| p.0).collect(),
        ),
    }
}

/// The parents and the routes to them; each parent's password is the URL's, else the one read
/// from its `password_env` or `password_file`.
fn routing(
    upstreams: BTreeMap<UpstreamName, RawUpstream>,
    route: RawRoute,
    secrets: &mut Secrets,
) -> Routing {
    Routing {
        upstreams: upstreams
            .into_iter()
            .map(|(name, mut raw)| {
                let (tls, negotiate) = raw.take_secure();
                let url = raw.url.0;
                let password = url.password.or_else(|| secrets.take_password(&name.0));
                Upstream {
                    name: name.0,
                    kind: url.kind,
                    host: url.host,
                    port: url.port,
                    user: url.user,
                    password,
                    password_file: raw.password_file.map(|f| f.0),
                    fallback: raw.fallback.into_iter().map(|n| n.0).collect(),
                    health_check: raw.health_check.map_or(DEFAULT_HEALTH_CHECK, |d| d.0),
                    tls,
                    negotiate,
                }
            })
            .collect(),
        default: route
            .default
            .map_or(RouteChoice::Direct, |n| RouteChoice::parse(&n.0)),
        direct: route.direct.into_iter().map(|p| p.0).collect(),
    }
}

/// How often each parent is probed when its file does not say.
const DEFAULT_HEALTH_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

mod identities;
mod lists;

#[cfg(test)]
mod tests;
