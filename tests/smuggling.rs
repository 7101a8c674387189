//! Request smuggling and response splitting through plain-HTTP forwarding: every shape in which
//! egress and the next hop (a destination on a kept-alive connection, a parent Squid, or the
//! client reading responses on its reused proxy connection) could disagree about where a message
//! ends. The witnesses are real parsers: hyper as the destination (it records every request it
//! parsed), Squid's access.log as the parent, and for responses a test client that frames by the
//! same RFC 9112 rules curl uses. A hostile but allowed destination is a raw TCP server.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::origin::Servers;
use support::squid::{Squid, SquidOptions};
use support::{curl, header, message, Proxy, WAIT};

// === a recording destination ===

/// A hyper origin that records every request it parsed as `METHOD path host=HOST body=N`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(servers: &Servers) -> Recorder {
        use http_body_util::{BodyExt, Full};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let addr = servers.runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let log = log.clone();
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let log = log.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("-")
                                .to_owned();
                            let body: hyper::body::Incoming = req.into_body();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let body = body.unwrap_or_default();
                            log.lock()
                                .unwrap()
                                .push(format!("{method} {path} host={host} body={}", body.len()));
                            let answer = format!("{method} {path} {}\n", body.len());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                bytes::Bytes::from(answer),
                            )))
                        }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                    );
                }
            });
            addr
        });
        Recorder { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

// === a hostile destination ===

/// A raw TCP destination that answers the `n`-th request head of each connection with
/// `answers(connection, n)` (connections and requests counted from 1), exactly as given; `None`
/// closes the connection instead.
fn hostile_origin(
    answers: impl Fn(usize, usize) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = Arc::new(answers);
    let connections = AtomicUsize::new(0);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let connection = connections.fetch_add(1, Ordering::SeqCst) + 1;
            let answers = answers.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                for n in 1.. {
                    if read_request_head(&mut reader).is_none() {
                        return;
                    }
                    match answers(connection, n) {
                        Some(bytes) => {
                            if writer.write_all(&bytes).is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    addr
}

/// Reads one request head (and no body: the hostile origin is only sent bodiless requests).
fn read_request_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

// === a client that reads responses one by one on a kept-alive connection ===

/// One response as a client framed it.
#[derive(Debug)]
struct Response {
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client on one proxy connection, framing responses by RFC 9112 §6.3 as curl does.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(proxy: &Proxy) -> Client {
        let stream = TcpStream::connect(proxy.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next response; `head_request` for a response to HEAD (no body). `None` at EOF.
    fn response(&mut self, head_request: bool) -> Option<Response> {
        let head = read_request_head(&mut self.reader)?;
        let status: u16 = head[9..12].parse().unwrap();
        let mut body = Vec::new();
        if head_request || status / 100 == 1 || status == 204 || status == 304 {
            // no body
        } else if header(&head, "transfer-encoding").is_some() {
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim_end().split(';').next()?, 16).ok()?;
                if size == 0 {
                    while read_line(&mut self.reader) != "\r\n" {}
                    break;
                }
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).ok()?;
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = header(&head, "content-length") {
            body.resize(length.parse().unwrap(), 0);
            self.reader.read_exact(&mut body).ok()?;
        } else {
            self.reader.read_to_end(&mut body).ok()?;
        }
        Some(Response { head, body })
    }

    /// Whether the proxy closed the connection (EOF with nothing more sent).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn get(addr: SocketAddr, path: &str) -> String {
    format!("GET http://{addr}{path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

fn allow_local(addrs: &[SocketAddr]) -> String {
    let entries: Vec<String> = addrs
        .iter()
        .map(|a| format!("\"127.0.0.1:{}\"", a.port()))
        .collect();
    format!("allow: [{}]\n", entries.join(", "))
}

/// A recording destination and a proxy that allows it (the servers' runtime must stay alive).
fn recorded() -> (Servers, Recorder, Proxy) {
    let servers = Servers::new();
    let origin = Recorder::start(&servers);
    let proxy = Proxy::start(&allow_local(&[origin.addr]));
    (servers, origin, proxy)
}

// === requests: Connection options that would change framing or routing ===

/// `Connection` (or `Proxy-Connection`) lines naming a header that frames or routes the
/// request, each with the body that would become a smuggled second request.
fn smuggling_requests(allowed: SocketAddr) -> Vec<(&'static str, String)> {
    let smuggled = "GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n";
    let length = smuggled.len();
    let chunked = format!("{length:x}\r\n{smuggled}\r\n0\r\n\r\n");
    let with_length = |connection: &str| {
        format!(
            "POST http://{allowed}/p HTTP/1.1\r\nHost: {allowed}\r\nContent-Length: {length}\r\n\
             {connection}\r\n\r\n{smuggled}"
        )
    };
    let with_chunks = |connection: &str| {
        format!(
            "POST http://{allowed}/p HTTP/1.1\r\nHost: {allowed}\r\nTransfer-Encoding: chunked\r\n\
             {connection}\r\n\r\n{chunked}"
        )
    };
    vec![
        (
            "content-length",
            with_length("Connection: keep-alive, Content-Length"),
        ),
        ("content-length", with_length("Connection: CONTENT-LENGTH")),
        (
            "content-length",
            with_length("Connection: keep-alive\r\nConnection: content-length"),
        ),
        (
            "content-length",
            with_length("Connection: keep-alive,\tcontent-length ,"),
        ),
        (
            "content-length",
            with_length("Proxy-Connection: Content-Length"),
        ),
        (
            "transfer-encoding",
            with_chunks("Connection: keep-alive, Transfer-Encoding"),
        ),
        (
            "transfer-encoding",
            with_chunks("Proxy-Connection: transfer-encoding"),
        ),
        ("host", with_length("Connection: Host")),
        (
            "upgrade",
            with_length("Connection: Upgrade\r\nUpgrade: h2c"),
        ),
        (
            "proxy-authorization",
            with_length("Connection: Proxy-Authorization"),
        ),
        ("te", with_length("Connection: TE\r\nTE: trailers")),
        ("trailer", with_chunks("Connection: Trailer")),
        (
            "expect",
            with_length("Connection: Expect\r\nExpect: 100-continue"),
        ),
    ]
}

#[track_caller]
fn assert_refused_as_bad_request(proxy: &Proxy, request: &str, named: &str) {
    let mut client = Client::connect(proxy);
    client.send(request.as_bytes());
    let response = client.response(false).expect("an answer");
    assert_eq!(response.status(), 400, "{response:?}\n{request}");
    assert_eq!(response.header("x-egress-error"), Some("bad-request"));
    assert!(
        response
            .body_text()
            .contains(&format!("Connection header names {named}")),
        "{response:?}"
    );
    assert!(client.closed(), "the connection closes after the refusal");
}

#[test]
fn connection_options_naming_framing_or_routing_headers_are_refused() {
    let (_servers, origin, proxy) = recorded();
    for (named, request) in smuggling_requests(origin.addr) {
        assert_refused_as_bad_request(&proxy, &request, named);
    }
    assert_eq!(
        origin.seen(),
        Vec::<String>::new(),
        "nothing reached the destination"
    );
    // A Connection header naming an ordinary hop-by-hop header is fine, and still removed.
    let mut client = Client::connect(&proxy);
    let addr = origin.addr;
    client.send(
        format!(
            "POST http://{addr}/ok HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 3\r\n\
             Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nabc{}",
            get(addr, "/after")
        )
        .as_bytes(),
    );
    assert_eq!(client.response(false).unwrap().body_text(), "POST /ok 3\n");
    assert_eq!(
        client.response(false).unwrap().body_text(),
        "GET /after 0\n"
    );
    assert_eq!(
        origin.seen(),
        [
            format!("POST /ok host={addr} body=3"),
            format!("GET /after host={addr} body=0")
        ]
    );
}

#[test]
fn connection_options_naming_framing_headers_never_reach_a_parent_squid() {
    let servers = Servers::new();
    let origin = Recorder::start(&servers);
    let squid = Squid::start(&SquidOptions {
        hosts: &[("allowed.test", "127.0.0.1")],
        ..SquidOptions::default()
    });
    let policy = format!(
        "listen: 127.0.0.1:0\nallow: [\"allowed.test:*\"]\n\
         upstreams:\n  corp:\n    url: http://{}\nroute:\n  default: corp\n",
        squid.addr
    );
    let proxy = Proxy::start_with(&policy, &[]);
    let allowed: SocketAddr = origin.addr;
    for (named, request) in smuggling_requests(allowed) {
        let request = request.replace(
            &allowed.to_string(),
            &format!("allowed.test:{}", allowed.port()),
        );
        assert_refused_as_bad_request(&proxy, &request, named);
    }
    // The same connection shape without the forbidden option goes through Squid, once.
    let url = format!("http://allowed.test:{}/hello", allowed.port());
    let r = curl(&["-x", &proxy.url(), &url]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "GET /hello 0\n"), "{r:?}");
    let entries = squid.wait_for_entries(1);
    assert_eq!(
        entries.len(),
        1,
        "only the good request reached Squid: {entries:?}"
    );
    assert_eq!(origin.seen().len(), 1, "{:?}", origin.seen());
}

// === responses: framing the client reads exactly as egress did ===

#[test]
fn responses_whose_connection_header_names_framing_headers_are_502() {
    let forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged";
    let shapes: Vec<String> = vec![
        format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello{forged}"),
        format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, content-length\r\n\r\nhello{forged}"),
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n{forged}"),
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nProxy-Connection: transfer-encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n{forged}"),
        format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Host\r\n\r\nhello"),
        // A status code that would not be three digits once written back (found by fuzzing).
        "HTTP/1.1 020 OK\r\nContent-Length: 5\r\n\r\nhello".to_string(),
        // A coding that only a lenient parser reads as chunked (no-break space).
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\u{a0}\r\n\r\n5\r\nhello\r\n0\r\n\r\n{forged}"),
        // A protocol switch nobody asked for, then more HTTP.
        format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n{forged}"),
    ];
    let servers = Servers::new();
    let good = Recorder::start(&servers);
    for shape in shapes {
        let answer = shape.clone().into_bytes();
        let hostile = hostile_origin(move |_, _| Some(answer.clone()));
        let proxy = Proxy::start(&allow_local(&[hostile, good.addr]));
        let mut client = Client::connect(&proxy);
        client.send(format!("{}{}", get(hostile, "/"), get(good.addr, "/next")).as_bytes());
        let response = client.response(false).expect("an answer");
        assert_eq!(response.status(), 502, "{shape}\n{response:?}");
        assert_eq!(
            response.header("x-egress-error"),
            Some("upstream-bad-response")
        );
        assert!(client.closed(), "{shape}: nothing more on the connection");
    }
    assert_eq!(
        good.seen(),
        Vec::<String>::new(),
        "the pipelined request was not sent on"
    );
}

/// curl reuses its proxy connection for a second host: what it reads for that host must come
/// from that host, whatever the first one sent.
#[test]
fn curl_reusing_its_proxy_connection_gets_each_hosts_own_answer() {
    let servers = Servers::new();
    let good = Recorder::start(&servers);
    let forged = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforged\n";
    let shapes: Vec<String> = vec![
        // Both framings: Transfer-Encoding wins, and the length must not reach the client.
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n6\r\nfirst\n\r\n0\r\n\r\n"),
        // A body after a response that has none.
        format!("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n{forged}"),
        format!("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n{forged}"),
        // Close-delimited: the client is told the connection closes.
        "HTTP/1.1 200 OK\r\n\r\nfirst\n".to_string(),
        "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n".to_string(),
    ];
    for shape in shapes {
        let answer = shape.clone().into_bytes();
        let hostile = hostile_origin(move |_, _| Some(answer.clone()));
        let proxy = Proxy::start(&allow_local(&[hostile, good.addr]));
        let r = curl(&[
            "-x",
            &proxy.url(),
            &format!("http://{hostile}/"),
            &format!("http://{}/second", good.addr),
        ]);
        assert_eq!(r.code, 0, "{shape}\n{r:?}");
        assert!(!r.stdout.contains("forged"), "{shape}\n{r:?}");
        assert!(r.stdout.ends_with("GET /second 0\n"), "{shape}\n{r:?}");
    }
}

#[test]
fn a_response_with_both_framings_reaches_the_client_chunked_only() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n6\r\nfirst\n\r\n0\r\n\r\n".to_vec();
    let hostile = hostile_origin(move |_, _| Some(answer.clone()));
    let proxy = Proxy::start(&allow_local(&[hostile]));
    let mut client = Client::connect(&proxy);
    client.send(get(hostile, "/").as_bytes());
    let response = client.response(false).unwrap();
    assert_eq!(response.header("content-length"), None, "{response:?}");
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.body_text(), "first\n");
}

#[test]
fn a_close_delimited_response_tells_the_client_the_connection_closes() {
    let listener_answer = b"HTTP/1.1 200 OK\r\n\r\nuntil close\n".to_vec();
    // An origin that sends a body without length and closes: read to close.
    let until_close = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if read_request_head(&mut reader).is_some() {
                    let _ = stream.write_all(&listener_answer);
                }
            }
        });
        addr
    };
    let proxy = Proxy::start(&allow_local(&[until_close]));
    let mut client = Client::connect(&proxy);
    client.send(get(until_close, "/").as_bytes());
    let response = client.response(false).unwrap();
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    assert_eq!(response.body_text(), "until close\n");
}

/// A destination that keeps sending after a response to HEAD: the kept-alive connection is out
/// of step and is not used again, so the next request's answer is never those bytes.
#[test]
fn bytes_after_a_response_to_head_never_answer_the_next_request() {
    let hostile = hostile_origin(|connection, n| {
        Some(match (connection, n) {
            (1, 1) => b"HTTP/1.1 200 OK\r\nContent-Length: 37\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
                .to_vec(),
            _ => format!("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn {connection}").into_bytes(),
        })
    });
    let proxy = Proxy::start(&allow_local(&[hostile]));
    let mut client = Client::connect(&proxy);
    client.send(format!("HEAD http://{hostile}/ HTTP/1.1\r\nHost: {hostile}\r\n\r\n").as_bytes());
    assert_eq!(client.response(true).unwrap().status(), 200);
    client.send(get(hostile, "/").as_bytes());
    assert_eq!(client.response(false).unwrap().body_text(), "conn 2");
}

/// Framing spellings that this proxy and another parser could read differently: Unicode space
/// around a coding, underscores for dashes, a trailer shaped like a request line or with a bare
/// CR. All refused before anything reaches the destination.
#[test]
fn framing_that_other_parsers_read_differently_is_refused() {
    let (_servers, origin, proxy) = recorded();
    let addr = origin.addr;
    let head = format!("POST http://{addr}/p HTTP/1.1\r\nHost: {addr}\r\n");
    let chunks = "5\r\nhello\r\n0\r\n\r\n";
    let requests = [
        format!("{head}Transfer-Encoding: chunked\u{a0}\r\n\r\n{chunks}"),
        format!("{head}Transfer-Encoding: \u{3000}chunked\u{85}\r\n\r\n{chunks}"),
        format!("{head}Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"),
        format!("{head}Content_Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}"),
        format!("{head}Transfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
        format!("{head}Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\rb\r\n\r\n"),
    ];
    for request in requests {
        let mut client = Client::connect(&proxy);
        client.send(request.as_bytes());
        let response = client.response(false).expect("an answer");
        assert_eq!(response.status(), 400, "{request:?}\n{response:?}");
        assert_eq!(response.header("x-egress-error"), Some("bad-request"));
    }
    // The trailer cases reached the destination only as an unfinished body, never as a request.
    assert!(
        origin.seen().iter().all(|r| !r.contains("smuggled")),
        "{:?}",
        origin.seen()
    );
}

/// Methods are case-sensitive: `head` is not HEAD, so its response has a body, and the next
/// response is the next request's own.
#[test]
fn a_lowercase_head_is_not_framed_as_head() {
    let hostile = hostile_origin(|_, n| {
        Some(match n {
            1 => b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
                .to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nREAL".to_vec(),
        })
    });
    let proxy = Proxy::start(&allow_local(&[hostile]));
    let mut client = Client::connect(&proxy);
    client.send(format!("head http://{hostile}/a HTTP/1.1\r\nHost: {hostile}\r\n\r\n").as_bytes());
    assert_eq!(client.response(false).unwrap().body.len(), 42);
    client.send(get(hostile, "/b").as_bytes());
    assert_eq!(client.response(false).unwrap().body_text(), "REAL");
}

// === HTTP/1.0 ===

#[test]
fn http_1_0_clients_are_told_about_keep_alive_and_never_get_chunks_or_interim_responses() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let interim = hostile_origin(|_, _| {
        Some(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfin"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&allow_local(&[origin, interim]));

    // Keep-alive asked for: the answer says it stays open, and it does.
    let mut client = Client::connect(&proxy);
    for _ in 0..2 {
        client.send(
            format!("GET http://{origin}/hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        let response = client.response(false).unwrap();
        assert_eq!(
            response.header("connection"),
            Some("keep-alive"),
            "{response:?}"
        );
        assert_eq!(response.body_text(), "hello from origin\n");
    }

    // A chunked response arrives without its coding, ended by close.
    let mut client = Client::connect(&proxy);
    client.send(
        format!("GET http://{origin}/chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .as_bytes(),
    );
    let response = client.response(false).unwrap();
    assert_eq!(response.header("transfer-encoding"), None, "{response:?}");
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body_text(), "first,second,third\n");

    // Transfer codings besides chunked cannot be named to a 1.0 client: 502, not an unlabelled
    // gzip body.
    let gzip = hostile_origin(|_, _| {
        Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n".to_vec())
    });
    let proxy_gzip = Proxy::start(&allow_local(&[gzip]));
    let mut client = Client::connect(&proxy_gzip);
    client.send(format!("GET http://{gzip}/ HTTP/1.0\r\n\r\n").as_bytes());
    let response = client.response(false).unwrap();
    assert_eq!(response.status(), 502, "{response:?}");

    // No 100 Continue for a 1.0 client; a 1.1 client gets it.
    let mut client = Client::connect(&proxy);
    client.send(format!("GET http://{interim}/ HTTP/1.0\r\n\r\n").as_bytes());
    let response = client.response(false).unwrap();
    assert_eq!(
        (response.status(), response.body_text().as_str()),
        (200, "fin")
    );
    let mut client = Client::connect(&proxy);
    client.send(get(interim, "/").as_bytes());
    assert_eq!(client.response(false).unwrap().status(), 100);
    assert_eq!(client.response(false).unwrap().body_text(), "fin");
}

#[test]
fn a_chunked_http_1_0_request_is_refused() {
    let (_servers, origin, proxy) = recorded();
    let addr = origin.addr;
    let mut client = Client::connect(&proxy);
    client.send(
        format!(
            "POST http://{addr}/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    let response = client.response(false).unwrap();
    assert_eq!(response.status(), 400);
    assert!(response
        .body_text()
        .contains("Transfer-Encoding in an HTTP/1.0 request"));
    assert_eq!(origin.seen(), Vec::<String>::new());
}

// === bodies, pipelining, keep-alive ===

#[test]
fn a_get_with_a_body_is_forwarded_with_its_length_and_the_next_request_stays_separate() {
    let (_servers, origin, proxy) = recorded();
    let addr = origin.addr;
    let mut client = Client::connect(&proxy);
    client.send(
        format!(
            "GET http://{addr}/with-body HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\r\nhello{}",
            get(addr, "/next")
        )
        .as_bytes(),
    );
    assert_eq!(
        client.response(false).unwrap().body_text(),
        "GET /with-body 5\n"
    );
    assert_eq!(client.response(false).unwrap().body_text(), "GET /next 0\n");
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn pipelined_requests_are_all_answered() {
    let (_servers, origin, proxy) = recorded();
    let addr = origin.addr;
    for round in 0..10 {
        let mut client = Client::connect(&proxy);
        let mut batch = String::new();
        for i in 0..200 {
            batch.push_str(&get(addr, &format!("/r{round}-{i}")));
        }
        client.send(batch.as_bytes());
        for i in 0..200 {
            let response = client
                .response(false)
                .unwrap_or_else(|| panic!("round {round}: answer {i} of 200 missing"));
            assert_eq!(response.body_text(), format!("GET /r{round}-{i} 0\n"));
        }
    }
}

/// Thousands of sequential keep-alive exchanges, with and without bodies: no answer is lost and
/// no connection is closed while it said it would stay open.
#[test]
fn sequential_keep_alive_requests_never_lose_an_answer() {
    let (_servers, origin, proxy) = recorded();
    let addr = origin.addr;
    let started = Instant::now();
    let mut client = Client::connect(&proxy);
    for i in 0..3000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "bounded in time"
        );
        let (request, expected) = if i % 2 == 0 {
            (get(addr, &format!("/{i}")), format!("GET /{i} 0\n"))
        } else {
            (
                format!(
                    "POST http://{addr}/{i} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4\r\n\r\nbody"
                ),
                format!("POST /{i} 4\n"),
            )
        };
        client.send(request.as_bytes());
        let response = client
            .response(false)
            .unwrap_or_else(|| panic!("answer {i} lost"));
        assert_eq!(response.body_text(), expected);
        assert_eq!(response.header("connection"), None, "{response:?}");
    }
}

// === Expect: 100-continue ===

#[test]
fn expect_100_continue_passes_through_and_an_early_refusal_closes_the_connection() {
    let servers = Servers::new();
    let origin = Recorder::start(&servers);
    let early = hostile_origin(|_, _| {
        Some(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec())
    });
    let proxy = Proxy::start(&allow_local(&[origin.addr, early]));
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("http://{}/e", origin.addr),
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "POST /e 100000\n"),
        "{r:?}"
    );

    // The destination answers before the body it did not want: the client, which holds its
    // body back, is told the connection closes, and it does.
    let mut client = Client::connect(&proxy);
    client.send(
        format!(
            "POST http://{early}/ HTTP/1.1\r\nHost: {early}\r\nContent-Length: 5\r\n\
             Expect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    );
    let response = client.response(false).expect("the early answer");
    assert_eq!(response.status(), 401);
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    assert!(client.closed());
}

// === stale kept-alive connections: retried when safe ===

/// The destination closes a kept-alive connection just as the next request arrives on it. A
/// request that may be repeated is sent again on a new connection; one with a body is not.
#[test]
fn a_kept_alive_connection_closed_under_a_request_is_retried_only_when_safe() {
    let hostile = hostile_origin(|_, n| {
        (n == 1).then(|| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let proxy = Proxy::start(&allow_local(&[hostile]));
    let mut client = Client::connect(&proxy);
    client.send(get(hostile, "/first").as_bytes());
    assert_eq!(client.response(false).unwrap().body_text(), "ok");
    client.send(get(hostile, "/again").as_bytes());
    let retried = client.response(false).expect("the GET is answered");
    assert_eq!(
        (retried.status(), retried.body_text().as_str()),
        (200, "ok")
    );
    client.send(
        format!(
            "POST http://{hostile}/p HTTP/1.1\r\nHost: {hostile}\r\nContent-Length: 1\r\n\r\nx"
        )
        .as_bytes(),
    );
    let post = client.response(false).expect("the POST is answered");
    assert_eq!(post.status(), 502, "{post:?}");
    assert_eq!(post.header("x-egress-error"), Some("upstream-bad-response"));
}

// === shutdown ===

#[test]
fn a_request_on_an_idle_keep_alive_connection_during_the_drain_gets_503() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let proxy = Proxy::start(&format!(
        "{}timeouts:\n  shutdown_grace: 10s\n",
        allow_local(&[origin])
    ));
    let mut idle = Client::connect(&proxy);
    idle.send(get(origin, "/hello").as_bytes());
    assert_eq!(
        idle.response(false).unwrap().body_text(),
        "hello from origin\n"
    );
    proxy.signal("TERM");
    proxy.wait_for_log("draining", |v| message(v) == "stopped accepting; draining");
    idle.send(get(origin, "/hello").as_bytes());
    let response = idle.response(false).expect("an answer, not a bare close");
    assert_eq!(response.status(), 503, "{response:?}");
    assert_eq!(response.header("x-egress-error"), Some("shutting-down"));
    assert_eq!(response.header("connection"), Some("close"));
}
