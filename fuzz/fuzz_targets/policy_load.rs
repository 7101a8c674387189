//! Policy loading: any text is either a configuration or an error with a position inside the
//! text — never a panic. A loaded policy decides every request without panicking.
#![no_main]

use egress_config::{load_str, Host, Protocol, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(text, "fuzz.yaml") {
        Ok(config) => {
            for (host, port) in [("example.com", 443), ("a.b.example.com", 80), ("10.1.2.3", 22), ("::1", 8080)] {
                let host = Host::parse(host).expect("fixed host");
                for protocol in [Protocol::HttpConnect, Protocol::HttpForward, Protocol::Socks5] {
                    let _ = config.policy.decide(&Request { host: &host, port, protocol });
                }
            }
        }
        Err(error) => {
            if let Some(line) = error.line {
                // YAML breaks lines at LF, CRLF and a lone CR alike.
                let breaks = text.replace("\r\n", "\n").bytes().filter(|b| matches!(b, b'\n' | b'\r')).count();
                assert!(line >= 1 && line <= breaks + 1, "line {line} of {}", breaks + 1);
            }
        }
    }
});
