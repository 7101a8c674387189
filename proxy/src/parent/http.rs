//! Talking to an HTTP parent (Squid and the like): `CONNECT hostname:port` with its
//! credentials (Basic, or a Kerberos token from `negotiate`), and what its answer means for the
//! client.

use base64::Engine as _;
use bytes::BytesMut;
use egress_config::{DenyReason, Host, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Attempt;
use crate::answer::Refusal;
use crate::h1::head::{parse_response, Buffered, HeadError, Header};

/// A parent's answer head may carry an error page's headers; more than this is not an answer.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// Headers of a parent's refusal worth passing on: its own name for the error.
const PASSED_ON: [&str; 2] = ["x-squid-error", "proxy-status"];

/// `Proxy-Authorization: Basic …` for a parent with credentials, CRLF-terminated.
pub fn authorization(upstream: &Upstream) -> Option<String> {
    let user = upstream.user.as_deref()?;
    let password = upstream.password.as_ref().map_or("", |p| p.expose());
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Proxy-Authorization: Basic {token}\r\n"))
}

/// Asks the parent on `stream` for a tunnel to `host:port` by name (so its `dstdomain` rules
/// see the name) and waits for its answer until `deadline`. On success, returns bytes the
/// parent already sent from the destination.
pub async fn connect(
    stream: &mut TcpStream,
    upstream: &Upstream,
    (host, port): (&Host, u16),
    authorization: Option<&str>,
    deadline: Instant,
) -> Result<BytesMut, Attempt> {
    let authority = host.authority(port);
    let request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{}\r\n",
        authorization.unwrap_or_default()
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| {
        Attempt::ParentFailed(unreachable(upstream, &format!("sending CONNECT: {e}")))
    })?;
    let mut reader = Buffered::new(&mut *stream);
    let head = match reader.read_head(MAX_ANSWER_HEAD, deadline).await {
        Ok(head) => head,
        Err(HeadError::Timeout { .. }) => {
            return Err(Attempt::Answered(Refusal::new(
                DenyReason::UpstreamTimeout,
                format!(
                    "parent {} did not answer CONNECT {authority} in time",
                    upstream.name
                ),
            )))
        }
        Err(e) => {
            return Err(Attempt::ParentFailed(unreachable(
                upstream,
                &format!("reading its answer to CONNECT: {e:?}"),
            )))
        }
    };
    let answer = parse_response(&head).ok_or_else(|| {
        Attempt::ParentFailed(Refusal::new(
            DenyReason::UpstreamBadResponse,
            format!(
                "parent {} answered CONNECT with something that is not HTTP",
                upstream.name
            ),
        ))
    })?;
    if answer.code == 200 {
        return Ok(reader.buf);
    }
    Err(Attempt::Answered(refusal_for(
        upstream,
        answer.code,
        &answer.headers,
        &authority,
    )))
}

/// What a parent's non-success answer means for the client. The parent is alive, so none of
/// these is a reason to try another parent.
pub fn refusal_for(upstream: &Upstream, code: u16, headers: &[Header], target: &str) -> Refusal {
    let passed_on = passed_on(headers);
    let error = passed_on
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-squid-error"))
        .map(|(_, value)| value.as_str());
    // An egress parent says why in `Proxy-Status` (RFC 9209) `details`, naming the identity it
    // refused: the client's summary and audit line carry it as the deciding rule.
    let details = passed_on
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-status"))
        .and_then(|(_, value)| status_details(value));
    let said = match error.or(details) {
        Some(error) => format!("{code} ({error})"),
        None => code.to_string(),
    };
    let parent = &upstream.name;
    let (reason, detail) = match code {
        407 => (
            DenyReason::UpstreamAuthFailed,
            format!("parent {parent} rejected egress's credentials for {target}: {said}"),
        ),
        403 => (
            DenyReason::UpstreamDenied,
            format!("parent {parent} refused {target}: {said}"),
        ),
        504 => (
            DenyReason::UpstreamTimeout,
            format!("parent {parent} timed out reaching {target}: {said}"),
        ),
        _ if error.is_some_and(|e| e.starts_with("ERR_DNS_FAIL")) => (
            DenyReason::DnsFailed,
            format!("parent {parent} could not resolve {target}: {said}"),
        ),
        _ if error.is_some_and(|e| e.starts_with("ERR_CONNECT_FAIL")) => (
            DenyReason::UpstreamRefused,
            format!("parent {parent} could not connect to {target}: {said}"),
        ),
        _ => (
            DenyReason::UpstreamUnreachable,
            format!("parent {parent} did not open {target}: {said}"),
        ),
    };
    let rule = (code == 403)
        .then_some(details)
        .flatten()
        .map(|d| format!("parent {parent}: {d}"));
    let details_rule = rule.as_deref();
    Refusal::new(reason, detail)
        .with_rule(details_rule)
        .passing_on(passed_on)
}

/// The `details` parameter of a `Proxy-Status` value (`name; error=…; details="…"`), already
/// checked to be printable ASCII by `passed_on`; `None` when it has none.
fn status_details(value: &str) -> Option<&str> {
    let start = value.find("details=\"")? + "details=\"".len();
    let rest = &value[start..];
    let end = rest.find('"')?;
    Some(&rest[..end]).filter(|d| !d.is_empty())
}

/// The parent's own error headers, when they are safe to repeat in ours.
fn passed_on(headers: &[Header]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|h| PASSED_ON.iter().any(|name| h.is(name)))
        .filter_map(|h| {
            let value = h.value_str()?.trim();
            let safe =
                value.len() <= 256 && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
            safe.then(|| {
                (
                    String::from_utf8_lossy(&h.name).into_owned(),
                    value.to_string(),
                )
            })
        })
        .take(PASSED_ON.len())
        .collect()
}

fn unreachable(upstream: &Upstream, what: &str) -> Refusal {
    Refusal::new(
        DenyReason::UpstreamUnreachable,
        format!(
            "parent {} ({}): {what}",
            upstream.name,
            upstream.display_url()
        ),
    )
}
