//! How egress proves itself to a parent beyond a user name and password: TLS to an `https://`
//! parent (its CA, an optional client certificate) and Kerberos (`auth: negotiate`). The config
//! keeps only paths and names; the files are read by the proxy when it connects, so no key
//! material sits in a `Config`, and a rotated certificate or keytab is picked up without a
//! reload.

use std::path::PathBuf;

use serde::Deserialize;

/// TLS to an `https://` parent: the server certificate is verified against the system roots
/// plus `ca_file`, and for the parent's host name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentTls {
    /// PEM certificates trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM certificate chain and its key, for parents that authenticate clients by certificate.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// `auth: negotiate`: a Kerberos ticket for the parent through the system GSSAPI library.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiate {
    /// The service the ticket is for, as GSSAPI writes it (`HTTP@squid.corp.example`); when
    /// unset, `HTTP@` and the parent's host name from its URL.
    pub principal: Option<String>,
    /// A keytab for a service account; when unset, the credential cache of the user egress runs
    /// as (what `klist` shows).
    pub keytab: Option<PathBuf>,
}

impl Negotiate {
    /// The GSSAPI host-based service name the ticket is for.
    pub fn service(&self, host: &crate::Host) -> String {
        match &self.principal {
            Some(principal) => principal.clone(),
            None => format!("HTTP@{host}"),
        }
    }
}

/// `auth:` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// User and password from the URL (or `password_env`/`password_file`).
    Basic,
    /// Kerberos through GSSAPI.
    Negotiate,
}

/// The keys of one `upstreams:` entry that this module owns, as written.
#[derive(Debug, Default)]
pub struct RawSecure<'a> {
    pub tls_url: bool,
    pub http_url: bool,
    pub has_user: bool,
    pub auth: Option<AuthScheme>,
    pub principal: Option<&'a str>,
    pub keytab: Option<&'a PathBuf>,
    pub ca_file: Option<&'a PathBuf>,
    pub client_cert: Option<&'a PathBuf>,
    pub client_key: Option<&'a PathBuf>,
}

/// A mistake in those keys: the key (relative to the upstream), the message, a hint.
pub type SecureError = (&'static str, String, Option<&'static str>);

impl RawSecure<'_> {
    /// Which combinations make sense; each refusal names the key to fix.
    pub fn check(&self) -> Result<(), SecureError> {
        let tls_only = [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
        ];
        if let Some((key, _)) = tls_only.iter().find(|(_, set)| *set && !self.tls_url) {
            return Err((
                key,
                format!("{key} needs an https:// parent url"),
                Some("write url: https://squid.example:3129"),
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            let key = if self.client_cert.is_some() {
                "client_key"
            } else {
                "client_cert"
            };
            return Err((
                key,
                "client_cert and client_key go together".into(),
                Some("give both PEM files: the certificate chain and its private key"),
            ));
        }
        let negotiate = self.auth == Some(AuthScheme::Negotiate);
        for (key, set) in [
            ("principal", self.principal.is_some()),
            ("keytab", self.keytab.is_some()),
        ] {
            if set && !negotiate {
                return Err((
                    key,
                    format!("{key} is for Kerberos parents"),
                    Some("add auth: negotiate"),
                ));
            }
        }
        if negotiate && !self.http_url {
            return Err((
                "auth",
                "negotiate is HTTP proxy authentication; a SOCKS5 parent cannot use it".into(),
                Some("use an http:// or https:// parent url"),
            ));
        }
        if negotiate && self.has_user {
            return Err((
                "auth",
                "a Kerberos parent takes no user name or password".into(),
                Some("the identity is the keytab's principal or the user's ticket"),
            ));
        }
        if self.auth == Some(AuthScheme::Basic) && !self.has_user {
            return Err((
                "auth",
                "basic needs a user name in the url".into(),
                Some("write http://user@host:port"),
            ));
        }
        if let Some(principal) = self.principal {
            let (service, host) = principal.split_once('@').unwrap_or(("", ""));
            if service.is_empty()
                || host.is_empty()
                || !principal
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
            {
                return Err((
                    "principal",
                    format!("{principal:?} is not a GSSAPI service name"),
                    Some("write it as service@host, e.g. HTTP@squid.corp.example"),
                ));
            }
        }
        Ok(())
    }
}

/// What `egress-proxy check` says about a parent's TLS and Kerberos: files and names only,
/// never what is in them.
pub fn summary(upstream: &crate::Upstream) -> String {
    let mut out = String::new();
    if let Some(tls) = &upstream.tls {
        match &tls.ca_file {
            Some(ca) => out.push_str(&format!(", TLS trusting system roots + {}", ca.display())),
            None => out.push_str(", TLS trusting system roots"),
        }
        if let Some(cert) = &tls.client_cert {
            out.push_str(&format!(", client certificate {}", cert.display()));
        }
    }
    if let Some(negotiate) = &upstream.negotiate {
        let source = match &negotiate.keytab {
            Some(keytab) => format!("keytab {}", keytab.display()),
            None => "the user's credential cache".to_string(),
        };
        out.push_str(&format!(
            ", Kerberos for {} from {source}",
            negotiate.service(&upstream.host)
        ));
    }
    out
}
