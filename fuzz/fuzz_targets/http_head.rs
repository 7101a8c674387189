//! The request-head path every plain-HTTP and CONNECT request takes: parse, then the checks the
//! proxy applies before deciding (target form, Host agreement, body framing). Also the response
//! head parser and chunk-size lines, which read bytes from destinations.
#![no_main]

use bytes::Bytes;
use egress_proxy::h1::{body, head};
use egress_proxy::http::target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(request) = head::parse_request(&bytes) {
        let _ = body::request_framing(request.minor_version, &request.headers);
        let target_text = request.target_str();
        if request.method.eq_ignore_ascii_case(b"CONNECT") {
            if let Ok((host, port)) = target::parse_connect(target_text) {
                // A parsed target always prints back to an authority that parses to itself.
                let again = target::parse_connect(&host.authority(port)).expect("round trip");
                assert_eq!(again, (host, port));
            }
        } else if let Ok(absolute) = target::parse_absolute(target_text) {
            assert!(absolute.path.starts_with('/') || absolute.path.starts_with('?'));
            let _ = target::check_host_header(&request.headers, &absolute);
        }
    }
    if let Some(response) = head::parse_response(&bytes) {
        let _ = body::response_framing(b"GET", response.code, &response.headers);
    }
    let _ = body::parse_chunk_size(data);
});
