//! Every refusal's answer, in one place: the HTTP status and body, and the SOCKS5 reply code.
//!
//! The `DenyReason` string is the `X-Egress-Error` header value and the log field, so a client
//! (or an AI agent reading the body) and an operator see the same name.

use std::borrow::Cow;
use std::fmt::Write as _;

use egress_config::{DenyReason, Fault, Protocol};

/// A refusal on its way to the client: the reason, plus a detail for logs and the body.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: DenyReason,
    pub detail: Cow<'static, str>,
    /// Headers of a parent proxy's own answer that are passed on to the client (its error
    /// name, like `X-Squid-Error`), already checked to be safe to write into a header.
    pub passed_on: Vec<(String, String)>,
    /// The policy rule that refused, as written in the policy file (for the audit line).
    pub rule: Option<String>,
}

impl Refusal {
    pub fn new(reason: DenyReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            passed_on: Vec::new(),
            rule: None,
        }
    }

    pub fn with_rule(mut self, rule: Option<&str>) -> Self {
        self.rule = rule.map(str::to_owned);
        self
    }

    pub fn passing_on(mut self, headers: Vec<(String, String)>) -> Self {
        self.passed_on = headers;
        self
    }

    /// The policy refusal of a recognised client names whom it was refused for: in the detail,
    /// and in a `Proxy-Status` header (RFC 9209) whose `details` a proxy in front of this one
    /// (egress-run's `--proxy`) passes on, so a user of a shared proxy learns that the rule is
    /// theirs, not everyone's. `identity` is a configured name (a closed alphabet: safe in a
    /// quoted header value); `anonymous` is not named, as it is nobody's policy in particular.
    pub fn for_identity(mut self, identity: &str) -> Self {
        if identity == egress_config::ANONYMOUS {
            return self;
        }
        self.detail = if self.detail.is_empty() {
            format!("for identity {identity}").into()
        } else {
            format!("{} for identity {identity}", self.detail).into()
        };
        self.passed_on.push((
            "Proxy-Status".into(),
            format!(
                "egress; error=http_request_denied; details=\"{} for identity {identity}\"",
                self.reason.as_str()
            ),
        ));
        self
    }
}

impl From<DenyReason> for Refusal {
    fn from(reason: DenyReason) -> Self {
        Self::new(reason, "")
    }
}

/// What the client asked for, as far as it was understood; shown in the answer's body.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub protocol: Protocol,
    /// `host:port` as normalised, or `None` when the request could not be parsed that far.
    pub target: Option<&'a str>,
    pub rule: Option<&'a str>,
}

/// The HTTP status for a reason.
pub const fn http_status(reason: DenyReason) -> (u16, &'static str) {
    use DenyReason::*;
    match reason {
        BlockedByDenylist | NotAllowlisted | PortNotAllowed | PrivateAddress | SniMismatch
        | UpstreamDenied | ApprovalTimeout | ApprovalDenied | ApprovalUnattended => {
            (403, "Forbidden")
        }
        ApprovalRateLimited => (429, "Too Many Requests"),
        HostMismatch | BadRequest | NotAProxyRequest => (400, "Bad Request"),
        AuthRequired | AuthFailed => (407, "Proxy Authentication Required"),
        HeaderTooLarge => (431, "Request Header Fields Too Large"),
        RequestTimeout => (408, "Request Timeout"),
        UnsupportedMethod => (501, "Not Implemented"),
        TooManyConnections | ShuttingDown => (503, "Service Unavailable"),
        DnsFailed | UpstreamRefused | UpstreamUnreachable | UpstreamBadResponse
        | UpstreamAuthFailed | UpstreamTlsFailed => (502, "Bad Gateway"),
        UpstreamTimeout => (504, "Gateway Timeout"),
    }
}

/// RFC 1928 reply codes.
pub mod socks_reply {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

/// The SOCKS5 reply code for a reason.
pub const fn socks_code(reason: DenyReason) -> u8 {
    use DenyReason::*;
    match reason.fault() {
        Fault::Policy => socks_reply::NOT_ALLOWED,
        Fault::Client | Fault::Capacity => match reason {
            UnsupportedMethod => socks_reply::COMMAND_NOT_SUPPORTED,
            _ => socks_reply::GENERAL_FAILURE,
        },
        Fault::Upstream => match reason {
            UpstreamRefused => socks_reply::CONNECTION_REFUSED,
            UpstreamUnreachable => socks_reply::NETWORK_UNREACHABLE,
            UpstreamAuthFailed | UpstreamTlsFailed => socks_reply::GENERAL_FAILURE,
            _ => socks_reply::HOST_UNREACHABLE,
        },
    }
}

/// The whole SOCKS5 reply refusing a request for `reason`, for a client whose request was never
/// decided (over a connection cap): no bound address, as RFC 1928 has none on failure.
pub const fn socks_refusal(reason: DenyReason) -> [u8; 10] {
    [0x05, socks_code(reason), 0x00, 0x01, 0, 0, 0, 0, 0, 0]
}

/// The reason phrase of a refusal: the status's own text, then who answered and why
/// (`Forbidden by egress: not-allowlisted`). Most clients show a refused tunnel or request as
/// its status line alone (Go, wget, pip, requests, httpx, npm, Java), never a header or the
/// body, so the reason must be in the line itself. The code is unchanged: clients decide on it.
pub fn reason_phrase(reason: DenyReason) -> String {
    let (_, text) = http_status(reason);
    format!("{text} by egress: {}", reason.as_str())
}

/// A complete HTTP/1.1 response for a refusal. The connection is closed after it: a refused
/// client has nothing more to say on this connection that we want to parse.
pub fn http_response(refusal: &Refusal, asked: &Asked<'_>) -> Vec<u8> {
    let (code, _) = http_status(refusal.reason);
    let body = body_text(refusal, asked);
    let mut out = String::with_capacity(256 + body.len());
    let _ = write!(out, "HTTP/1.1 {code} {}\r\n", reason_phrase(refusal.reason));
    for (name, value) in &refusal.passed_on {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    // Every policy refusal says so in `Proxy-Status` (RFC 9209), the identity's own (see
    // `Refusal::for_identity`) or a parent's passed on when there is one: a proxy in front of
    // this one (egress-run's `--proxy`, a captured connection forwarded in plain HTTP) tells the
    // parent's refusal from a destination's own 403 by it. `reason` is a closed alphabet.
    let says_why = refusal
        .passed_on
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("proxy-status"));
    if refusal.reason.fault() == Fault::Policy && !says_why {
        let _ = write!(
            out,
            "Proxy-Status: egress; error=http_request_denied; details=\"{}\"\r\n",
            refusal.reason.as_str()
        );
    }
    let _ = write!(
        out,
        "X-Egress-Error: {reason}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {len}\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\r\n{body}",
        reason = refusal.reason.as_str(),
        len = body.len(),
    );
    out.into_bytes()
}

/// The plain-text body: what was blocked, why, and what to do about it.
fn body_text(refusal: &Refusal, asked: &Asked<'_>) -> String {
    let reason = refusal.reason;
    let mut body = String::with_capacity(320);
    match asked.target {
        Some(target) => {
            let _ = writeln!(
                body,
                "egress: {} {target} via {}",
                verb(reason),
                asked.protocol.as_str()
            );
        }
        None => {
            let _ = writeln!(body, "egress: {}", verb(reason));
        }
    }
    let _ = writeln!(
        body,
        "reason: {} ({})",
        reason.as_str(),
        reason.explanation()
    );
    if !refusal.detail.is_empty() {
        let _ = writeln!(body, "detail: {}", refusal.detail);
    }
    if let Some(rule) = asked.rule {
        let _ = writeln!(body, "rule: {rule}");
    }
    match reason.fault() {
        Fault::Policy => {
            body.push_str(
                "This proxy enforces an egress policy. Retrying, or trying another route around \
                 the proxy, will not work. If this destination is needed, ask whoever runs the \
                 proxy to add it to the allow list.\n",
            );
        }
        Fault::Client => body.push_str("Fix the request and send it again.\n"),
        Fault::Capacity => body.push_str("Try again shortly.\n"),
        Fault::Upstream => {
            body.push_str("The policy allowed this destination, but it could not be reached.\n")
        }
    }
    body
}

fn verb(reason: DenyReason) -> &'static str {
    match reason.fault() {
        Fault::Policy => "blocked",
        Fault::Client => "could not serve the request",
        Fault::Capacity => "busy",
        Fault::Upstream => "could not reach",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_an_error_status_and_a_failure_reply() {
        for reason in DenyReason::ALL {
            let (code, _) = http_status(reason);
            assert!((400..600).contains(&code), "{reason}: {code}");
            assert_ne!(socks_code(reason), socks_reply::SUCCEEDED, "{reason}");
        }
    }

    #[test]
    fn every_status_line_names_egress_and_the_reason_in_safe_characters() {
        for reason in DenyReason::ALL {
            let (code, text) = http_status(reason);
            let refusal = Refusal::from(reason);
            let asked = Asked {
                protocol: Protocol::HttpConnect,
                target: None,
                rule: None,
            };
            let answer = String::from_utf8(http_response(&refusal, &asked)).unwrap();
            let line = answer.split("\r\n").next().unwrap();
            assert_eq!(
                line,
                format!("HTTP/1.1 {code} {text} by egress: {}", reason.as_str())
            );
            // RFC 9112 reason-phrase: HTAB, SP, VCHAR; nothing a client could misparse.
            assert!(line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
        }
    }

    #[test]
    fn denial_names_reason_target_and_advice() {
        let refusal = Refusal::from(DenyReason::NotAllowlisted);
        let asked = Asked {
            protocol: Protocol::HttpConnect,
            target: Some("evil.example:443"),
            rule: None,
        };
        let text = String::from_utf8(http_response(&refusal, &asked)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 403 Forbidden by egress: not-allowlisted\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nX-Egress-Error: not-allowlisted\r\n"));
        assert!(text.contains("blocked evil.example:443 via http-connect"));
        assert!(text.contains("will not work"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn policy_refusals_say_why_in_one_proxy_status_and_other_failures_do_not() {
        let asked = Asked {
            protocol: Protocol::HttpForward,
            target: Some("x.example:80"),
            rule: None,
        };
        let statuses = |refusal: &Refusal| -> Vec<String> {
            let text = String::from_utf8(http_response(refusal, &asked)).unwrap();
            let (head, _) = text.split_once("\r\n\r\n").unwrap();
            head.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("proxy-status:"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            statuses(&Refusal::from(DenyReason::PortNotAllowed)),
            ["Proxy-Status: egress; error=http_request_denied; details=\"port-not-allowed\""]
        );
        // An identity's own replaces it; a parent's passed on is not doubled.
        assert_eq!(
            statuses(&Refusal::from(DenyReason::NotAllowlisted).for_identity("alice")),
            ["Proxy-Status: egress; error=http_request_denied; details=\"not-allowlisted for identity alice\""]
        );
        let parents = Refusal::from(DenyReason::UpstreamDenied).passing_on(vec![(
            "proxy-status".into(),
            "squid; error=http_request_denied".into(),
        )]);
        assert_eq!(
            statuses(&parents),
            ["proxy-status: squid; error=http_request_denied"]
        );
        for reason in [
            DenyReason::UpstreamTimeout,
            DenyReason::TooManyConnections,
            DenyReason::BadRequest,
        ] {
            assert_eq!(
                statuses(&Refusal::from(reason)),
                Vec::<String>::new(),
                "{reason:?}"
            );
        }
    }
}
