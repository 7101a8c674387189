//! One question, one answer: the policy decides whether the name is answered at all (as
//! protocol `dns`, for the client's identity), egress's own resolver finds its addresses, the
//! address guard checks every one, and only then are they handed out — and remembered for
//! this client (`handed`). Each query is its own ledger entry: a refusal is recorded with its
//! reason (metrics, audit, events) like any other.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_config::{DenyReason, Host, Protocol};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, HTTPS};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::svcb;
use crate::account::{self, Ledger};
use crate::answer::Refusal;
use crate::state::ProxyState;
use crate::{decide, destination, identify};

const PROTOCOL: Protocol = Protocol::Dns;
/// The port DNS records are accounted under.
const PORT: u16 = 53;
/// The TTL handed out: the resolver's, within these bounds (a 0 s answer would expire before
/// the client's connection arrives; a day-long one would hold an address long after the name
/// moved). `/etc/hosts` names get `HOSTS_TTL`.
const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(300);
const HOSTS_TTL: Duration = Duration::from_secs(60);
/// Firefox turns its own DNS-over-HTTPS off when this name does not resolve.
const DOH_CANARY: &str = "use-application-dns.net";

/// The answer to the DNS message `query` from `client`, as bytes no longer than `limit`
/// (UDP: what the client said it takes; an answer that does not fit is sent truncated, and the
/// client asks again over TCP). `None`: not even a header to answer.
pub async fn reply(
    query: &[u8],
    client: SocketAddr,
    state: &Arc<ProxyState>,
    udp: bool,
) -> Option<Vec<u8>> {
    let query = match Message::from_vec(query) {
        Ok(query) => query,
        Err(error) => {
            debug!(%error, %client, "not a DNS message");
            return format_error(query);
        }
    };
    let ledger = Ledger::new(client, PROTOCOL, state.observer.clone());
    let response = ledger.scope(respond(&query, client, state)).await;
    ledger.close();
    let bytes = response.to_vec().ok()?;
    let limit = usize::from(query.max_payload().max(512));
    if udp && bytes.len() > limit {
        return response.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// FORMERR for a message too broken to parse, when it has an ID to answer to.
fn format_error(query: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let mut response = Message::new();
    response
        .set_id(id)
        .set_message_type(MessageType::Response)
        .set_response_code(ResponseCode::FormErr);
    response.to_vec().ok()
}

async fn respond(query: &Message, client: SocketAddr, state: &ProxyState) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .add_queries(query.queries().to_vec());
    if query.message_type() != MessageType::Query || query.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return response;
    }
    let [question] = query.queries() else {
        response.set_response_code(ResponseCode::FormErr);
        return response;
    };
    let asked = question.name().to_ascii().to_ascii_lowercase();
    let name = asked.strip_suffix('.').unwrap_or(&asked);
    if name == DOH_CANARY {
        debug!(%client, "the DoH canary: NXDOMAIN, so the browser keeps using this resolver");
        response.set_response_code(ResponseCode::NXDomain);
        return response;
    }
    let kind = question.query_type();
    match decided(name, question.name(), kind, client, state).await {
        Ok(records) => {
            response.add_answers(records);
        }
        Err(Outcome {
            code,
            refusal,
            host,
        }) => {
            account::refused(
                PROTOCOL,
                host.as_ref().map(|h| (h, PORT)),
                refusal.reason,
                refusal.rule.as_deref(),
            );
            debug!(%client, name, reason = refusal.reason.as_str(), detail = %refusal.detail, "DNS question refused");
            response.set_response_code(code);
        }
    }
    response
}

/// A question not answered: the code the client gets and the refusal accounted.
struct Outcome {
    code: ResponseCode,
    refusal: Refusal,
    host: Option<Host>,
}

/// The records answering `kind` for `name`, when the client's policy allows the name and its
/// addresses pass the guard.
async fn decided(
    name: &str,
    owner: &Name,
    kind: RecordType,
    client: SocketAddr,
    state: &ProxyState,
) -> Result<Vec<Record>, Outcome> {
    let snapshot = state.snapshot();
    let host = match Host::parse(name) {
        Ok(host @ Host::Name(_)) => host,
        // An address is no name: PTR-style questions go through `in-addr.arpa` names.
        Ok(Host::Ip(_)) | Err(_) => {
            return Err(Outcome {
                code: ResponseCode::NXDomain,
                refusal: Refusal::new(DenyReason::BadRequest, format!("{name:?} is not a name")),
                host: None,
            })
        }
    };
    let refused = |code: ResponseCode, refusal: Refusal| Outcome {
        code,
        refusal,
        host: Some(host.clone()),
    };
    let identity = identify::intercepted(&snapshot.identities, client.ip(), None)
        .map_err(|r| refused(ResponseCode::Refused, r))?;
    account::identified(&identity);
    let verdict = decide::check(&snapshot, &identity, &host, PORT, PROTOCOL)
        .map_err(|r| refused(ResponseCode::NXDomain, r))?;
    match kind {
        RecordType::A | RecordType::AAAA | RecordType::CNAME => {
            let found = snapshot
                .resolver
                .lookup(name)
                .await
                .map_err(|r| refused(ResponseCode::ServFail, r))?;
            destination::check_all(
                &snapshot.guard,
                &host,
                &found.addresses,
                verdict.explicit_address,
            )
            .map_err(|r| refused(ResponseCode::Refused, r))?;
            let ttl = found.ttl.unwrap_or(HOSTS_TTL).clamp(MIN_TTL, MAX_TTL);
            let seconds = ttl.as_secs() as u32;
            if kind == RecordType::CNAME {
                return Ok(found
                    .cnames
                    .into_iter()
                    .filter(|r| r.name() == owner)
                    .map(|mut r| {
                        r.set_ttl(seconds);
                        r
                    })
                    .collect());
            }
            let given: Vec<IpAddr> = found
                .addresses
                .into_iter()
                .filter(|ip| ip.is_ipv4() == (kind == RecordType::A))
                .collect();
            state.handed.remember(client.ip(), &host, &given, ttl);
            Ok(given
                .iter()
                .map(|ip| {
                    let data = match ip {
                        IpAddr::V4(v4) => RData::A(A(*v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                    };
                    Record::from_rdata(owner.clone(), seconds, data)
                })
                .collect())
        }
        RecordType::HTTPS | RecordType::SVCB => {
            let records = snapshot
                .resolver
                .records(name, kind)
                .await
                .map_err(|r| refused(ResponseCode::ServFail, r))?;
            Ok(records
                .into_iter()
                .filter_map(|r| {
                    let ttl = Duration::from_secs(u64::from(r.ttl())).clamp(MIN_TTL, MAX_TTL);
                    let data = match r.data() {
                        RData::HTTPS(HTTPS(record)) => RData::HTTPS(HTTPS(svcb::strip(record))),
                        RData::SVCB(record) => RData::SVCB(svcb::strip(record)),
                        _ => return None,
                    };
                    Some(Record::from_rdata(
                        r.name().clone(),
                        ttl.as_secs() as u32,
                        data,
                    ))
                })
                .collect())
        }
        // Any other type of an allowed name: no records (NOERROR, empty), never passed on.
        _ => Ok(Vec::new()),
    }
}
