//! The smuggling invariant of plain-HTTP forwarding: a message egress accepts is forwarded so that
//! the next hop frames it exactly as egress did. Any head that parses and passes egress's checks
//! is rewritten the way the forwarder rewrites it (to a destination, to a parent; to the client
//! with every delivery), parsed again as the next hop would, and its framing compared.
#![no_main]

use bytes::Bytes;
use egress_proxy::h1::body::{self, Framing};
use egress_proxy::h1::head::{self, Header};
use egress_proxy::h1::rewrite::{self, Delivery};
use libfuzzer_sys::fuzz_target;

const PARENT_AUTH: &str = "Proxy-Authorization: Basic ZWdyZXNzOnNlY3JldA==\r\n";

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(request) = head::parse_request(&bytes) {
        check_request(&request);
    }
    if let Some(response) = head::parse_response(&bytes) {
        check_response(&response);
    }
});

fn count(headers: &[Header], name: &str) -> usize {
    headers.iter().filter(|h| h.is(name)).count()
}

fn check_request(request: &head::RequestHead) {
    if rewrite::forbidden_connection_option(&request.headers).is_some() {
        return;
    }
    let Ok(framing) = body::request_framing(request.minor_version, &request.headers) else {
        return;
    };
    // egress adds up to three headers (Host, Via, the parent's Proxy-Authorization); re-parsing
    // with egress's own header cap would then refuse a head the next hop reads fine.
    if request.headers.len() + 3 > head::MAX_HEADERS {
        return;
    }
    let heads = [
        rewrite::request_head(&request.method, "/p", "example.com:80", &request.headers),
        rewrite::parent_request_head(
            &request.method,
            "/p",
            "example.com:80",
            &request.headers,
            Some(PARENT_AUTH),
        ),
    ];
    for (i, out) in heads.into_iter().enumerate() {
        let out = Bytes::from(out);
        let again = head::parse_request(&out).expect("a forwarded request head parses");
        assert_eq!(
            body::request_framing(again.minor_version, &again.headers),
            Ok(framing),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert!(rewrite::forbidden_connection_option(&again.headers).is_none());
        assert_eq!(count(&again.headers, "host"), 1, "only egress's Host");
        let auth = count(&again.headers, "proxy-authorization");
        assert_eq!(auth, i, "only the parent's own credentials");
        assert_eq!(count(&again.headers, "connection"), 0);
    }
}

fn check_response(response: &head::ResponseHead) {
    if response.code == 101 || rewrite::forbidden_connection_option(&response.headers).is_some() {
        return;
    }
    if response.headers.len() + 2 > head::MAX_HEADERS {
        return; // Via and Connection are added (see above)
    }
    for method in [&b"GET"[..], b"HEAD"] {
        let Ok(framing) = body::response_framing(method, response.code, &response.headers) else {
            continue;
        };
        let mut deliveries = vec![
            Delivery::default(),
            Delivery {
                close: true,
                ..Delivery::default()
            },
            Delivery {
                announce_keep_alive: true,
                ..Delivery::default()
            },
        ];
        if framing == Framing::Chunked {
            deliveries.push(Delivery {
                close: true,
                dechunk: true,
                announce_keep_alive: false,
            });
        }
        for delivery in deliveries {
            let out = rewrite::response_head(
                response.code,
                &response.reason,
                &response.headers,
                delivery,
            );
            let out = Bytes::from(out);
            let again = head::parse_response(&out).expect("a relayed response head parses");
            let expected = if delivery.dechunk {
                Framing::UntilClose
            } else {
                framing
            };
            assert_eq!(
                body::response_framing(method, again.code, &again.headers),
                Ok(expected),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
            assert!(rewrite::forbidden_connection_option(&again.headers).is_none());
            let close = rewrite::wants_close(again.minor_version, &again.headers);
            assert_eq!(close, delivery.close, "the client is told what egress does");
        }
    }
}
