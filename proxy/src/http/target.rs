//! Request targets: `CONNECT host:port` (authority-form) and `http://host/path` (absolute-form),
//! and the agreement between an absolute-form target and its `Host` header.

use egress_config::{parse_authority, DenyReason, Host};

use crate::answer::Refusal;
use crate::h1::head::{values, Header};

/// An absolute-form target split into what is dialed and what is sent on.
#[derive(Debug, PartialEq, Eq)]
pub struct Absolute<'a> {
    pub host: Host,
    pub port: u16,
    /// Origin-form path and query for the destination; `/` when the target had none.
    pub path: &'a str,
}

/// `CONNECT` targets must name a port: there is no default for a tunnel.
pub fn parse_connect(target: &str) -> Result<(Host, u16), Refusal> {
    match parse_authority(target) {
        Ok((host, Some(port))) => Ok((host, port)),
        Ok((_, None)) => Err(Refusal::new(
            DenyReason::BadRequest,
            "CONNECT needs host:port, e.g. CONNECT example.com:443",
        )),
        Err(error) => Err(Refusal::new(
            DenyReason::BadRequest,
            format!("invalid CONNECT target: {error}"),
        )),
    }
}

pub fn parse_absolute(target: &str) -> Result<Absolute<'_>, Refusal> {
    if target.starts_with('/') || target == "*" {
        return Err(Refusal::new(
            DenyReason::NotAProxyRequest,
            "origin-form request sent to the proxy; set the proxy in the client \
             (e.g. curl -x http://this-proxy:3128 http://example.com/ or HTTP_PROXY)",
        ));
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "request target is not a URL",
        ));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "https:// must be tunnelled: use CONNECT (clients do this when the proxy is set for https)",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "only http:// URLs are forwarded; other schemes need CONNECT",
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "credentials in the URL are not forwarded; send an Authorization header instead",
        ));
    }
    let (host, port) = parse_authority(authority)
        .map_err(|e| Refusal::new(DenyReason::BadRequest, format!("invalid URL host: {e}")))?;
    // The fragment is the client's business, never the server's.
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() || path.starts_with('?') {
        // `http://h?q` has an empty path; the origin-form target must start with `/`.
        if path.is_empty() {
            "/"
        } else {
            return Err(Refusal::new(
                DenyReason::BadRequest,
                "URL query without a path",
            ));
        }
    } else {
        path
    };
    Ok(Absolute {
        host,
        port: port.unwrap_or(80),
        path,
    })
}

/// The target of a request on an intercepted connection that went to `original`: named by its
/// `Host` header (origin-form is normal here), or by an absolute-form URL that the `Host`
/// header agrees with. A port written in either must be the one the connection went to. With
/// no name at all (HTTP/1.0 without `Host`, or an empty one) the target is the original address
/// itself, which only an IP entry allows — or, when the original address stands for a name
/// (`transparent::StandIns`), that name (the caller checks that a name written is that one).
pub fn intercepted<'a>(
    target: &'a str,
    headers: &[Header],
    original: std::net::SocketAddr,
    stood_for: Option<&Host>,
) -> Result<Absolute<'a>, Refusal> {
    let port = original.port();
    let named = if target.starts_with('/') {
        let mut hosts = values(headers, "host");
        let header = hosts.next();
        if hosts.next().is_some() {
            return Err(Refusal::new(
                DenyReason::BadRequest,
                "more than one Host header",
            ));
        }
        let text = match header {
            Some(header) => header.value_str().map(str::trim).ok_or_else(|| {
                Refusal::new(DenyReason::BadRequest, "the Host header is not text")
            })?,
            None => "",
        };
        let (host, written) = if text.is_empty() {
            let nameless = Host::Ip(original.ip().to_canonical());
            (stood_for.cloned().unwrap_or(nameless), None)
        } else {
            parse_authority(text).map_err(|e| {
                Refusal::new(DenyReason::BadRequest, format!("invalid Host header: {e}"))
            })?
        };
        Absolute {
            host,
            port: written.unwrap_or(port),
            path: target,
        }
    } else {
        let absolute = parse_absolute(target)?;
        check_host_header(headers, &absolute)?;
        absolute
    };
    if named.port != port {
        return Err(Refusal::new(
            DenyReason::HostMismatch,
            format!(
                "the request names port {}, but the connection went to port {port}",
                named.port
            ),
        ));
    }
    Ok(named)
}

/// The `Host` header, when present, must name the same host and port as the target: a mismatch is
/// how requests are smuggled past filters that look at only one of them.
pub fn check_host_header(headers: &[Header], target: &Absolute<'_>) -> Result<(), Refusal> {
    let mut hosts = values(headers, "host");
    let Some(header) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "more than one Host header",
        ));
    }
    let agrees = header
        .value_str()
        .and_then(|v| parse_authority(v.trim()).ok())
        .is_some_and(|(host, port)| host == target.host && port.unwrap_or(80) == target.port);
    if agrees {
        Ok(())
    } else {
        Err(Refusal::new(
            DenyReason::HostMismatch,
            "the Host header names a different host than the request URL",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_is_split() {
        let t = parse_absolute("http://Example.COM:8080/a/b?c=d#frag").unwrap();
        assert_eq!(t.host, Host::parse("example.com").unwrap());
        assert_eq!((t.port, t.path), (8080, "/a/b?c=d"));
        let t = parse_absolute("http://example.com").unwrap();
        assert_eq!((t.port, t.path), (80, "/"));
    }

    #[test]
    fn a_request_to_a_stand_in_address_without_a_name_is_its_names() {
        use crate::h1::head::parse_request;
        let original: std::net::SocketAddr = "198.18.0.1:80".parse().unwrap();
        let stood_for = Host::parse("origin.test").unwrap();
        let named = |head: &str| {
            let req = parse_request(&bytes::Bytes::from(head.to_string())).unwrap();
            intercepted(req.target_str(), &req.headers, original, Some(&stood_for))
                .map(|t| t.host.to_string())
                .map_err(|r| r.reason)
        };
        let ok = Ok("origin.test".to_string());
        assert_eq!(named("GET / HTTP/1.1\r\nHost: Origin.Test\r\n\r\n"), ok);
        assert_eq!(named("GET / HTTP/1.0\r\n\r\n"), ok, "no Host: the name");
        assert_eq!(
            named("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"),
            Ok("other.test".to_string()),
            "a name written is the request's (`exchange` refuses it: host-mismatch)"
        );
    }

    #[test]
    fn an_intercepted_request_is_named_by_its_host_header() {
        use crate::h1::head::parse_request;
        let original: std::net::SocketAddr = "198.18.1.2:80".parse().unwrap();
        let named = |head: &str| {
            let req = parse_request(&bytes::Bytes::from(head.to_string())).unwrap();
            intercepted(req.target_str(), &req.headers, original, None)
                .map(|t| (t.host.to_string(), t.port, t.path.to_string()))
                .map_err(|r| r.reason)
        };
        let ok = |host: &str, path: &str| Ok((host.to_string(), 80, path.to_string()));
        assert_eq!(
            named("GET /a HTTP/1.1\r\nHost: Example.COM.\r\n\r\n"),
            ok("example.com", "/a")
        );
        assert_eq!(
            named("GET / HTTP/1.1\r\nHost: example.com:80\r\n\r\n"),
            ok("example.com", "/")
        );
        assert_eq!(named("GET / HTTP/1.0\r\n\r\n"), ok("198.18.1.2", "/"));
        assert_eq!(
            named("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            ok("198.18.1.2", "/")
        );
        assert_eq!(
            named("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            ok("example.com", "/x")
        );
        let mismatch = Err(DenyReason::HostMismatch);
        assert_eq!(
            named("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
            mismatch
        );
        assert_eq!(
            named("GET http://example.com/ HTTP/1.1\r\nHost: other.test\r\n\r\n"),
            mismatch
        );
        assert_eq!(
            named("GET http://example.com:81/ HTTP/1.1\r\n\r\n"),
            mismatch
        );
        let bad = Err(DenyReason::BadRequest);
        assert_eq!(
            named("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
            bad
        );
        assert_eq!(named("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), bad);
    }

    #[test]
    fn wrong_forms_get_their_reasons() {
        let reason = |t| parse_absolute(t).unwrap_err().reason;
        assert_eq!(reason("/index.html"), DenyReason::NotAProxyRequest);
        assert_eq!(reason("https://example.com/"), DenyReason::BadRequest);
        assert_eq!(reason("ftp://example.com/"), DenyReason::BadRequest);
        assert_eq!(
            reason("http://user:pw@example.com/"),
            DenyReason::BadRequest
        );
        assert_eq!(reason("http:///path"), DenyReason::BadRequest);
        assert!(parse_connect("example.com").is_err());
        assert_eq!(parse_connect("[::1]:443").unwrap().1, 443);
    }
}
