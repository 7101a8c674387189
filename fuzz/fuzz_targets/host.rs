//! Host normalisation: every accepted spelling normalises to a host that prints back to text
//! which parses to the same host (idempotence), and names are lowercase ASCII without a
//! trailing dot — the policy compares nothing else.
#![no_main]

use egress_config::{parse_authority, Host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(host) = Host::parse(text) {
        let printed = host.to_string();
        assert_eq!(Host::parse(&printed).as_ref(), Ok(&host), "{text:?} -> {printed:?}");
        if let Host::Name(name) = &host {
            assert!(!name.ends_with('.'));
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'), "{name:?}");
            assert!(name.len() <= 253);
        }
        assert_eq!(parse_authority(&host.authority(443)), Ok((host, Some(443))));
    }
    let _ = parse_authority(text);
});
