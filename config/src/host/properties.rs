//! Normalisation invariants over generated input: whatever spelling a client uses, one host has
//! one normal form, and the normal form is a fixed point. (The `host` fuzz target checks the
//! same on arbitrary bytes; these cover the spellings fuzzing reaches only by luck.)

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// DNS-ish names: 1-4 labels of letters, digits, hyphen inside; not numeric-looking at the end.
/// No hyphens in the third and fourth places: `xn--…` is an IDNA A-label, which must be valid
/// punycode (`xn---a` is rightly refused), and IDNA reserves the other `??--` labels.
fn name() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]"
        .prop_filter("no hyphens in places 3 and 4", |l: &String| {
            l.get(2..4) != Some("--")
        });
    prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_shortcut_for_normal_names_agrees_with_the_whole_normalisation(
        input in "[a-zX_.-]{0,12}(xn--)?[a-z0-9.-]{0,12}",
        long in 0usize..3,
    ) {
        // Labels of 63 and 64 characters, and names near 253, now and then.
        let input = match long {
            1 => format!("{}.{input}", "a".repeat(63 + input.len() % 2)),
            2 => format!("{input}.{}", ["b".repeat(60), "c".repeat(60), "d".repeat(60), "e".repeat(60)].join(".")),
            _ => input,
        };
        prop_assert_eq!(normalise_name(&input), normalise_slowly(&input), "{}", input);
        if is_normal_already(&input) {
            prop_assert_eq!(normalise_slowly(&input), Ok(input.clone()));
        }
    }

    #[test]
    fn parsing_is_idempotent(input in "\\PC{0,40}") {
        if let Ok(host) = Host::parse(&input) {
            prop_assert_eq!(Host::parse(&host.to_string()), Ok(host.clone()));
            prop_assert_eq!(parse_authority(&host.authority(8443)), Ok((host, Some(8443))));
        }
    }

    #[test]
    fn case_and_one_trailing_dot_do_not_change_a_name(name in name()) {
        // (An invalid A-label is refused whatever its case: see the test below.)
        let normal = Host::parse(&name);
        prop_assert!(normal.is_ok(), "{}: {:?}", name, normal);
        prop_assert_eq!(Host::parse(&name.to_ascii_uppercase()), normal.clone());
        prop_assert_eq!(Host::parse(&format!("{name}.")), normal.clone());
        prop_assert_eq!(Host::parse(&format!("{name}..")), Err(HostError::EmptyLabel));
        if let Ok(Host::Name(n)) = normal {
            prop_assert!(n.bytes().all(|b| !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn every_ipv4_spelling_is_the_same_address(bits in any::<u32>()) {
        let addr = Ipv4Addr::from(bits);
        let expected = Ok(Host::Ip(addr.into()));
        let [a, b, c, d] = addr.octets();
        let spellings = [
            addr.to_string(),
            bits.to_string(),
            format!("0x{bits:x}"),
            format!("0{bits:o}"),
            format!("{a}.{b}.{}", u32::from(c) << 8 | u32::from(d)),
            format!("{a}.{}", bits & 0x00ff_ffff),
            format!("0x{a:x}.0{b:o}.{c}.0x{d:X}"),
            format!("{addr}."),
            format!("[::ffff:{addr}]"),
            format!("::ffff:{addr}"),
        ];
        for spelling in spellings {
            prop_assert_eq!(Host::parse(&spelling), expected.clone(), "{}", spelling);
        }
    }

    #[test]
    fn an_ipv4_part_out_of_range_is_an_error_not_a_name(a in 256u32..100_000, rest in 0u8..=255) {
        prop_assert_eq!(Host::parse(&format!("{a}.{rest}.0.1")), Err(HostError::InvalidIpv4));
        prop_assert_eq!(Host::parse(&format!("{rest}.{rest}.{rest}.{a}")), Err(HostError::InvalidIpv4));
    }

    #[test]
    fn ipv6_spellings_agree(bits in any::<u128>()) {
        let addr = Ipv6Addr::from(bits);
        let normal = Host::parse(&addr.to_string());
        prop_assert!(normal.is_ok());
        let full = addr.segments().iter().map(|s| format!("{s:04X}")).collect::<Vec<_>>().join(":");
        prop_assert_eq!(Host::parse(&full), normal.clone());
        prop_assert_eq!(Host::parse(&format!("[{addr}]")), normal);
    }

    #[test]
    fn control_characters_spaces_and_zone_ids_never_parse(
        prefix in "[a-z]{1,8}",
        bad in prop::sample::select(vec!['\0', '\t', '\n', '\r', ' ', '\x07', '\x7f', '%']),
        suffix in "[a-z]{1,8}",
    ) {
        let input = format!("{prefix}{bad}{suffix}");
        prop_assert!(Host::parse(&input).is_err(), "{:?}", input);
    }
}

#[test]
fn an_invalid_idna_a_label_is_refused_in_any_case() {
    // Found by the property above when its generator still made such labels.
    assert_eq!(Host::parse("xn---a"), Err(HostError::Idna));
    assert_eq!(Host::parse("xN---a"), Err(HostError::Idna));
}
