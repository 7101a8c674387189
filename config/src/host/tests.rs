use super::*;

fn name(input: &str) -> String {
    match Host::parse(input) {
        Ok(Host::Name(n)) => n.into(),
        other => panic!("{input:?} should be a name, got {other:?}"),
    }
}

fn ip(input: &str) -> String {
    match Host::parse(input) {
        Ok(Host::Ip(ip)) => ip.to_string(),
        other => panic!("{input:?} should be an address, got {other:?}"),
    }
}

#[test]
fn names_are_lowercased_and_lose_one_trailing_dot() {
    assert_eq!(name("GitHub.COM"), "github.com");
    assert_eq!(name("github.com."), "github.com");
    assert_eq!(name("_dmarc.example.com"), "_dmarc.example.com");
    assert!(Host::parse("github.com..").is_err());
}

#[test]
fn international_names_become_punycode() {
    assert_eq!(name("bücher.example"), "xn--bcher-kva.example");
    assert_eq!(name("BÜCHER.example."), "xn--bcher-kva.example");
    assert_eq!(name("xn--bcher-kva.example"), "xn--bcher-kva.example");
    assert!(
        Host::parse("xn--zz-zzzzzz.example").is_err(),
        "bogus punycode"
    );
}

#[test]
fn every_ipv4_spelling_is_one_address() {
    for spelling in [
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "0x7f.1",
        "2130706433",
        "017700000001",
        "0x7f000001",
        "0177.0.0.01",
        "127.0.1",
    ] {
        assert_eq!(ip(spelling), "127.0.0.1", "{spelling}");
    }
    assert_eq!(ip("0"), "0.0.0.0");
    assert_eq!(ip("10.0.0.1."), "10.0.0.1");
}

#[test]
fn invalid_ipv4_lookalikes_are_errors_not_names() {
    for bad in [
        "1.2.3.256",
        "256.1.1.1",
        "1.2.3.4.5",
        "0x1g.1",
        "4294967296",
        "09.1.1.1",
        "1..1",
        "0x.1",
    ] {
        assert!(Host::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn ipv6_is_accepted_bracketed_and_mapped_ipv4_unwrapped() {
    assert_eq!(ip("[::1]"), "::1");
    assert_eq!(ip("::1"), "::1");
    assert_eq!(ip("[2001:DB8::1]"), "2001:db8::1");
    assert_eq!(ip("::ffff:127.0.0.1"), "127.0.0.1");
    assert_eq!(ip("[::ffff:7f00:1]"), "127.0.0.1");
    assert_eq!(Host::parse("[::1]").unwrap().authority(443), "[::1]:443");
}

#[test]
fn hostile_spellings_are_refused() {
    assert_eq!(Host::parse("fe80::1%eth0"), Err(HostError::ZoneId));
    assert_eq!(Host::parse("[fe80::1%25eth0]"), Err(HostError::ZoneId));
    assert_eq!(
        Host::parse("exa\0mple.com"),
        Err(HostError::ControlCharacter)
    );
    assert_eq!(Host::parse("a b.com"), Err(HostError::ControlCharacter));
    assert_eq!(Host::parse(""), Err(HostError::Empty));
    assert_eq!(Host::parse("."), Err(HostError::Empty));
    assert_eq!(Host::parse(".example.com"), Err(HostError::EmptyLabel));
    assert!(matches!(
        Host::parse("exa/mple.com"),
        Err(HostError::InvalidCharacter('/'))
    ));
    assert_eq!(Host::parse(&"a".repeat(64)), Err(HostError::LabelTooLong));
    let long = vec!["abcdefgh"; 30].join(".");
    assert_eq!(Host::parse(&long), Err(HostError::NameTooLong));
}

#[test]
fn authorities_split_host_and_port() {
    let p = |s| parse_authority(s);
    assert_eq!(
        p("Example.com:443").unwrap(),
        (Host::Name("example.com".into()), Some(443))
    );
    assert_eq!(p("example.com").unwrap().1, None);
    assert_eq!(
        p("[::1]:8080").unwrap(),
        (Host::Ip("::1".parse().unwrap()), Some(8080))
    );
    assert_eq!(p("[::1]").unwrap().1, None);
    assert_eq!(p("::1:443"), Err(HostError::UnbracketedIpv6));
    for bad in [
        "example.com:0",
        "example.com:65536",
        "example.com:+1",
        "example.com:",
        "example.com: 1",
        "[::1]x",
    ] {
        assert!(p(bad).is_err(), "{bad}");
    }
}

#[test]
fn characters_idna_maps_to_digits_make_an_address_not_a_name() {
    // Fullwidth digits and full stops map to ASCII: the result is an address, as typed ASCII is.
    assert_eq!(
        Host::parse("１２７.０.０.１"),
        Ok(Host::Ip("127.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        Host::parse("１２７．０．０．１"),
        Ok(Host::Ip("127.0.0.1".parse().unwrap()))
    );
    // Found by the `host` fuzz target: `ˣ` maps to `x`, making the last label `21x7`, which
    // typed in ASCII is an invalid address.
    assert_eq!(Host::parse("ȧ7.21ˣ7"), Err(HostError::InvalidIpv4));
    assert_eq!(Host::parse("xn--7-gya.21x7"), Err(HostError::InvalidIpv4));
}
