//! What the user asked for, and the parts of it every platform's runner checks the same way:
//! the proxy (a policy that loads, or a proxy URL that parses) and absolute paths.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;

use crate::policy;

/// What the user asked for.
#[derive(Debug)]
pub struct Request {
    pub proxy: Option<String>,
    /// The password for `--proxy`'s user, from a file (else `PASSWORD_ENV`).
    pub proxy_password_file: Option<PathBuf>,
    /// Kerberos to `--proxy` with the user's own ticket.
    pub proxy_negotiate: bool,
    pub policy: Option<PathBuf>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_write: Vec<PathBuf>,
    /// The home directory may be a writable root (see `protect::refuse_home`).
    pub allow_write_home: bool,
    pub deny_read: Vec<PathBuf>,
    pub srt_settings: Option<PathBuf>,
    pub read_only: bool,
    /// `--pass-env` names: passed to the command although they look like credentials.
    pub pass_env: Vec<String>,
    pub quiet: bool,
    /// Capture of connections that ignore the proxy variables (Linux, see `capture`; a Mac
    /// accepts the flags and has nothing to capture with).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub capture: Capture,
    pub command: Vec<OsString>,
}

/// `--no-capture`, the default, or `--require-capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    Off,
    Wanted,
    Required,
}

/// Where `--proxy`'s password is read from when no file is named. egress-run removes it from
/// the sandbox's environment: the command never sees it.
pub const PASSWORD_ENV: &str = "EGRESS_PROXY_PASSWORD";

/// The configuration of egress-run's own proxy, which every connection from the sandbox goes
/// to (on Linux it has no listening port): the policy's (a file, the built-in one, or
/// `--allow`/`--deny`), or a forwarder to `--proxy`. Checked: it loads, or the URL parses.
pub fn prepare(request: &Request) -> anyhow::Result<egress_config::Config> {
    let Some(url) = &request.proxy else {
        if request.proxy_negotiate {
            bail!("--proxy-negotiate is for --proxy; a --policy file says auth: negotiate itself");
        }
        return policy::build(
            request.policy.as_deref(),
            &request.allow,
            &request.deny,
            request.srt_settings.is_some(),
        );
    };
    if request.policy.is_some() || !request.allow.is_empty() || !request.deny.is_empty() {
        bail!(
            "--proxy sends every connection to that proxy, which decides; --policy, --allow and \
             --deny are for egress-run's own proxy"
        );
    }
    chained_config(
        &ProxyUrl::parse(url)?,
        request.proxy_password_file.as_deref(),
        request.proxy_negotiate,
    )
}

/// The embedded proxy as a pure forwarder to `target`, which does the filtering: every request
/// goes through (report mode, no address guard, no SNI check of its own) to that one parent,
/// with its user's password (`password_file`, else `PASSWORD_ENV`). Through the embedded proxy
/// rather than byte for byte, so that a parent that is down or refuses gets the same clear
/// answers as anywhere else (502 `upstream-unreachable`, SOCKS5 replies), a SOCKS5 parent
/// serves HTTP clients too, and the password never enters the sandbox.
fn chained_config(
    target: &ProxyUrl<'_>,
    password_file: Option<&std::path::Path>,
    negotiate: bool,
) -> anyhow::Result<egress_config::Config> {
    let url = match target.user {
        Some(user) => format!("{}://{user}@{}", target.scheme, target.host_port),
        None => format!("{}://{}", target.scheme, target.host_port),
    };
    let mut upstream = serde_json::json!({ "url": url });
    if negotiate {
        if target.user.is_some() || password_file.is_some() {
            bail!("--proxy-negotiate uses your Kerberos ticket: no user or password with it");
        }
        if target.scheme == "socks5" {
            bail!("--proxy-negotiate is for http:// and https:// proxies");
        }
        upstream["auth"] = "negotiate".into();
    } else if target.user.is_some() {
        match password_file {
            Some(path) => upstream["password_file"] = path.to_string_lossy().into(),
            None if std::env::var_os(PASSWORD_ENV).is_some() => {
                upstream["password_env"] = PASSWORD_ENV.into()
            }
            None => bail!(
                "--proxy {url} names a user: give the password in {PASSWORD_ENV} or with \
                 --proxy-password-file FILE (never on the command line)"
            ),
        }
    } else if password_file.is_some() {
        bail!("--proxy-password-file needs a user in the --proxy URL (http://USER@HOST:PORT)");
    }
    // YAML reads JSON: the URL and path need no quoting rules of their own this way.
    let config = serde_json::json!({
        "mode": "report",
        "address_guard": { "enabled": false },
        "tls": { "sni": "off" },
        "upstreams": { "proxy": upstream },
        "route": { "default": "proxy" },
    });
    egress_config::load_str(&config.to_string(), "--proxy").map_err(|e| anyhow::anyhow!("{e}"))
}

/// `--proxy [http://|socks5://][USER@]HOST:PORT`, checked: no password in it (it would show
/// in `ps`).
#[derive(Debug, PartialEq, Eq)]
struct ProxyUrl<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    host_port: &'a str,
}

impl<'a> ProxyUrl<'a> {
    fn parse(url: &'a str) -> anyhow::Result<Self> {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme @ ("http" | "https" | "socks5"), rest)) => (scheme, rest),
            Some((other, _)) => {
                bail!("--proxy {url}: {other}:// is not supported (http://, https:// or socks5://)")
            }
            None => ("http", url),
        };
        let rest = rest.trim_end_matches('/');
        let (user, host_port) = match rest.rsplit_once('@') {
            Some((userinfo, _)) if userinfo.contains(':') => bail!(
                "--proxy takes no password in the URL (it would show in ps); set {PASSWORD_ENV} \
                 or use --proxy-password-file"
            ),
            Some((user, host_port)) => (Some(user), host_port),
            None => (None, rest),
        };
        if host_port.is_empty() || host_port.contains('/') {
            bail!("--proxy {url}: expected HOST:PORT");
        }
        Ok(Self {
            scheme,
            user,
            host_port,
        })
    }
}

/// Files holding proxy credentials, which the sandbox must not read: `--proxy-password-file`,
/// every upstream's `password_file`, Kerberos `keytab` and TLS `client_key` in `config` (a
/// `--policy` file may name them), and the `--policy` file itself when a password is written
/// in it (in an upstream's URL).
pub fn password_files(
    request: &Request,
    config: Option<&egress_config::Config>,
) -> anyhow::Result<Vec<PathBuf>> {
    let named = request.proxy_password_file.iter().cloned();
    let in_config = config
        .into_iter()
        .flat_map(|c| &c.routing.upstreams)
        .flat_map(|u| {
            [
                u.password_file.clone(),
                u.negotiate.as_ref().and_then(|n| n.keytab.clone()),
                u.tls.as_ref().and_then(|t| t.client_key.clone()),
            ]
        })
        .flatten();
    let passwords = parent_passwords(config);
    let policy = request.policy.iter().filter(|path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        passwords.iter().any(|p| text.contains(p))
    });
    absolute(
        &named
            .chain(in_config)
            .chain(policy.cloned())
            .collect::<Vec<_>>(),
    )
}

/// Every parent proxy's password in `config`, however it was given: kept from the command in
/// whatever variable it is found (see `env_scrub`).
pub fn parent_passwords(config: Option<&egress_config::Config>) -> Vec<&str> {
    config
        .into_iter()
        .flat_map(|c| &c.routing.upstreams)
        .filter_map(|u| u.password.as_ref().map(|p| p.expose()))
        .collect()
}

/// The home directories whose secrets are masked: `$HOME`, and the user's home in the password
/// database when it differs (`sudo -E`, a `HOME` pointed elsewhere): ssh and others read the
/// latter whatever `HOME` says.
pub fn home_dirs() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = std::env::var_os("HOME")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let uid = rustix::process::getuid().as_raw();
    let from_passwd = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| passwd_home(&text, uid));
    if let Some(home) = from_passwd {
        if !homes.contains(&home) {
            homes.push(home);
        }
    }
    homes
}

/// The home directory of `uid` in passwd(5) text.
fn passwd_home(text: &str, uid: u32) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() == 7 && fields[2].parse() == Ok(uid) && fields[5].starts_with('/'))
            .then(|| PathBuf::from(fields[5]))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_directory_is_read_from_passwd_by_uid() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    # comment\n\
                    dev:x:1000:1000:Dev,,,:/home/dev:/bin/zsh\n\
                    broken:x:1001\n";
        assert_eq!(passwd_home(text, 1000), Some(PathBuf::from("/home/dev")));
        assert_eq!(passwd_home(text, 0), Some(PathBuf::from("/root")));
        assert_eq!(passwd_home(text, 1001), None);
        assert_eq!(passwd_home(text, 42), None);
    }

    #[test]
    fn proxy_urls_are_split_and_passwords_refused() {
        assert_eq!(
            ProxyUrl::parse("http://alice@squid.corp:3128/").unwrap(),
            ProxyUrl {
                scheme: "http",
                user: Some("alice"),
                host_port: "squid.corp:3128"
            }
        );
        assert_eq!(
            ProxyUrl::parse("127.0.0.1:3128").unwrap(),
            ProxyUrl {
                scheme: "http",
                user: None,
                host_port: "127.0.0.1:3128"
            }
        );
        assert_eq!(ProxyUrl::parse("socks5://h:1080").unwrap().scheme, "socks5");
        let refused = ProxyUrl::parse("http://alice:s3cret@squid:3128").unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        assert!(refused.to_string().contains("no password in the URL"));
        assert_eq!(
            ProxyUrl::parse("https://squid:3129").unwrap().scheme,
            "https"
        );
        assert!(ProxyUrl::parse("ftp://squid:3128").is_err());
        assert!(ProxyUrl::parse("http://squid:3128/path").is_err());
    }
}

#[cfg(test)]
mod credential_files {
    use super::*;

    #[test]
    fn keytabs_and_client_keys_are_hidden_like_password_files() {
        let config = egress_config::load_str(
            "upstreams:\n  krb:\n    url: http://s\n    auth: negotiate\n    keytab: /k/egress.keytab\n  \
             tls:\n    url: https://t\n    client_cert: /k/egress.pem\n    client_key: /k/egress.key\n",
            "test",
        )
        .unwrap();
        let request = Request {
            proxy: None,
            proxy_password_file: None,
            proxy_negotiate: false,
            policy: None,
            allow: Vec::new(),
            deny: Vec::new(),
            allow_write: Vec::new(),
            allow_write_home: false,
            deny_read: Vec::new(),
            srt_settings: None,
            read_only: false,
            pass_env: Vec::new(),
            quiet: true,
            capture: Capture::Off,
            command: Vec::new(),
        };
        let hidden = password_files(&request, Some(&config)).unwrap();
        // The certificate is public; its key and the keytab are not.
        assert_eq!(
            hidden,
            [
                PathBuf::from("/k/egress.keytab"),
                PathBuf::from("/k/egress.key")
            ]
        );
    }
}
