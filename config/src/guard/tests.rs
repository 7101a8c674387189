use super::*;

fn kind(text: &str) -> Option<SpecialKind> {
    classify(text.parse().unwrap()).map(|s| s.kind)
}

#[test]
fn every_ipv4_row_of_the_table() {
    let rows = [
        ("0.0.0.0", SpecialKind::Unspecified),
        ("0.1.2.3", SpecialKind::ThisNetwork),
        ("127.0.0.1", SpecialKind::Loopback),
        ("127.255.255.254", SpecialKind::Loopback),
        ("10.0.0.1", SpecialKind::Private),
        ("172.16.0.1", SpecialKind::Private),
        ("172.31.255.255", SpecialKind::Private),
        ("192.168.1.1", SpecialKind::Private),
        ("169.254.1.1", SpecialKind::LinkLocal),
        ("100.64.0.1", SpecialKind::SharedAddressSpace),
        ("100.127.255.255", SpecialKind::SharedAddressSpace),
        ("192.0.0.8", SpecialKind::Reserved),
        ("192.0.2.1", SpecialKind::Documentation),
        ("198.51.100.7", SpecialKind::Documentation),
        ("203.0.113.9", SpecialKind::Documentation),
        ("198.18.0.1", SpecialKind::Documentation),
        ("198.19.255.255", SpecialKind::Documentation),
        ("224.0.0.1", SpecialKind::Multicast),
        ("239.255.255.250", SpecialKind::Multicast),
        ("240.0.0.1", SpecialKind::Reserved),
        ("255.255.255.255", SpecialKind::Broadcast),
        ("169.254.169.254", SpecialKind::Metadata),
        ("169.254.170.2", SpecialKind::Metadata),
        ("168.63.129.16", SpecialKind::Metadata),
        ("100.100.100.200", SpecialKind::Metadata),
    ];
    for (addr, expected) in rows {
        assert_eq!(kind(addr), Some(expected), "{addr}");
    }
}

#[test]
fn public_ipv4_neighbours_of_special_ranges_pass() {
    for addr in [
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "168.63.129.17",
        "126.255.255.255",
        "128.0.0.0",
    ] {
        assert_eq!(kind(addr), None, "{addr}");
    }
}

#[test]
fn every_ipv6_row_of_the_table() {
    let rows = [
        ("::", SpecialKind::Unspecified),
        ("::1", SpecialKind::Loopback),
        ("fe80::1", SpecialKind::LinkLocal),
        ("febf:ffff::1", SpecialKind::LinkLocal),
        ("fec0::1", SpecialKind::UniqueLocal),
        ("fc00::1", SpecialKind::UniqueLocal),
        ("fdff:ffff::1", SpecialKind::UniqueLocal),
        ("ff02::1", SpecialKind::Multicast),
        ("2001:db8::1", SpecialKind::Documentation),
        ("3fff:fff::1", SpecialKind::Documentation),
        ("2001:2::1", SpecialKind::Documentation),
        ("100::1", SpecialKind::Reserved),
        ("2001:10::1", SpecialKind::Reserved),
        ("fd00:ec2::254", SpecialKind::Metadata),
    ];
    for (addr, expected) in rows {
        assert_eq!(kind(addr), Some(expected), "{addr}");
    }
    for public in [
        "2606:4700::1111",
        "2a00:1450::1",
        "2001:4860::8888",
        "3fff:1000::1",
        "fe7f::1",
    ] {
        assert_eq!(kind(public), None, "{public}");
    }
}

#[test]
fn ipv4_inside_ipv6_is_decoded_in_every_form() {
    let metadata = Ipv4Addr::new(169, 254, 169, 254);
    let spellings = [
        "::ffff:169.254.169.254",   // mapped
        "::ffff:a9fe:a9fe",         // mapped, hex
        "::169.254.169.254",        // compatible
        "::ffff:0:169.254.169.254", // SIIT-translated
        "64:ff9b::169.254.169.254", // NAT64 well-known prefix
        "64:ff9b:1::a9fe:a9fe",     // NAT64 local-use prefix
        "2002:a9fe:a9fe::1",        // 6to4
        "2001:0:1:2:0:0:5601:5601", // Teredo: client address stored inverted
    ];
    for text in spellings {
        let special = classify(text.parse().unwrap()).unwrap_or_else(|| panic!("{text} passed"));
        assert_eq!(
            (special.kind, special.embedded),
            (SpecialKind::Metadata, Some(metadata)),
            "{text}"
        );
    }
    let loopback = classify("::ffff:127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(loopback.kind, SpecialKind::Loopback);
    assert_eq!(
        loopback.to_string(),
        "loopback (IPv4 127.0.0.1 embedded in IPv6)"
    );
    assert_eq!(kind("2002:0a00:0001::1"), Some(SpecialKind::Private));
    // Public IPv4 inside IPv6 is public.
    assert_eq!(kind("::ffff:1.1.1.1"), None);
    assert_eq!(kind("64:ff9b::8.8.8.8"), None);
    assert_eq!(kind("2002:0808:0808::1"), None);
}

#[test]
fn a_teredo_relay_on_a_private_server_address_is_refused() {
    // Server 10.0.0.1 (bits 32..64), client 1.2.3.4 (inverted: fefd:fcfb).
    assert_eq!(kind("2001:0:a00:1::fefd:fcfb"), Some(SpecialKind::Private));
    assert_eq!(kind("2001:0:4136:e378:8000:63bf:fefd:fcfb"), None);
}

#[test]
fn own_addresses_are_refused_also_when_embedded() {
    let own: IpAddr = "203.0.114.5".parse().unwrap();
    let guard = AddressGuard::new(Vec::new()).with_own_addresses(vec![own]);
    assert_eq!(guard.check(own).unwrap_err().kind, SpecialKind::OwnAddress);
    let mapped = guard
        .check("::ffff:203.0.114.5".parse().unwrap())
        .unwrap_err();
    assert_eq!(
        (mapped.kind, mapped.embedded),
        (SpecialKind::OwnAddress, Some(Ipv4Addr::new(203, 0, 114, 5)))
    );
    assert!(guard.check("203.0.114.6".parse().unwrap()).is_ok());
}

#[test]
fn allow_networks_except_what_they_contain_and_metadata_only_by_name() {
    let nets = [
        "10.20.0.0/16",
        "100.64.0.0/10",
        "fd00::/8",
        "169.254.170.2/32",
    ];
    let guard = AddressGuard::new(nets.iter().map(|n| n.parse().unwrap()).collect());
    let check = |a: &str| guard.check(a.parse().unwrap()).map_err(|s| s.kind);
    assert_eq!(check("10.20.3.4"), Ok(()));
    assert_eq!(
        check("::ffff:10.20.3.4"),
        Ok(()),
        "the embedded address is excepted too"
    );
    assert_eq!(check("10.21.0.1"), Err(SpecialKind::Private));
    assert_eq!(check("100.100.0.1"), Ok(()));
    assert_eq!(
        check("100.100.100.200"),
        Err(SpecialKind::Metadata),
        "a wide range does not open metadata"
    );
    assert_eq!(check("fd00:ec2::254"), Err(SpecialKind::Metadata));
    assert_eq!(check("fd12::1"), Ok(()));
    assert_eq!(check("169.254.170.2"), Ok(()), "named exactly");
    assert_eq!(check("127.0.0.1"), Err(SpecialKind::Loopback));
}

#[test]
fn a_disabled_guard_lets_everything_through() {
    let guard = AddressGuard::disabled();
    assert!(!guard.is_enabled());
    assert!(guard.check("169.254.169.254".parse().unwrap()).is_ok());
}

#[test]
fn only_networks_wholly_inside_one_special_range_count_as_naming_it() {
    for (net, expected) in [
        ("10.0.0.0/8", true),
        ("10.1.0.0/16", true),
        ("127.0.0.0/8", true),
        ("100.64.0.0/10", true),
        ("fd00::/8", true),
        ("0.0.0.0/0", false),
        ("::/0", false),
        ("10.0.0.0/7", false),
        ("8.8.8.0/24", false),
    ] {
        assert_eq!(network_is_special(&net.parse().unwrap()), expected, "{net}");
    }
}
