//! The index must find exactly what checking every entry in turn finds.

use proptest::prelude::*;

use super::*;

/// Every position whose entry covers `host`, by asking each entry.
fn scan(patterns: &[Pattern], host: &Host) -> Vec<usize> {
    (0..patterns.len())
        .filter(|p| patterns[*p].matches_host(host))
        .collect()
}

fn indexed(index: &Index, patterns: &[Pattern], host: &Host) -> Vec<usize> {
    let mut found = Vec::new();
    index.for_each_match(patterns, host, |p| found.push(p));
    found.sort_unstable();
    found
}

/// Names from a small alphabet, so that entries and targets often share labels.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c-d"]), 2..5)
        .prop_map(|labels| labels.join("."))
}

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        name().prop_map(|n| format!(".{n}")),
        name().prop_map(|n| format!("*.{n}")),
        name().prop_map(|n| format!("{n}:8080")),
        (0u8..4, 0u8..4, 0u8..=32).prop_map(|(a, b, len)| format!("10.{a}.{b}.0/{len}")),
        (0u8..4, 0u8..4).prop_map(|(a, b)| format!("10.{a}.{b}.1")),
        (0u16..4, 0u8..=128).prop_map(|(a, len)| format!("fd00:{a}::/{len}")),
        (0u16..4).prop_map(|a| format!("fd00:{a}::1")),
        Just("::ffff:10.0.0.0/104".to_string()),
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        (0u8..4, 0u8..4, 0u8..4).prop_map(|(a, b, c)| format!("10.{a}.{b}.{c}")),
        (0u16..4, 0u16..4).prop_map(|(a, b)| format!("fd00:{a}::{b}")),
        Just("::ffff:10.0.0.1".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_index_finds_what_a_scan_of_every_entry_finds(
        entries in prop::collection::vec(entry(), 0..40),
        targets in prop::collection::vec(target(), 1..10),
    ) {
        let patterns: Vec<Pattern> = entries.iter().map(|e| Pattern::parse(e).unwrap()).collect();
        let index = Index::new(&patterns);
        for target in &targets {
            let host = Host::parse(target).unwrap();
            prop_assert_eq!(indexed(&index, &patterns, &host), scan(&patterns, &host), "{}", target);
        }
    }
}

#[test]
fn a_name_listed_twice_is_found_at_both_positions() {
    let patterns: Vec<Pattern> = ["a.example:80", "b.example", "a.example:443", "a.example"]
        .iter()
        .map(|e| Pattern::parse(e).unwrap())
        .collect();
    let index = Index::new(&patterns);
    let host = Host::parse("a.example").unwrap();
    assert_eq!(indexed(&index, &patterns, &host), vec![0, 2, 3]);
}
