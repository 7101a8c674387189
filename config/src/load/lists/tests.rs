//! Reading lists line by line must give exactly what the YAML parser gives: the same entries,
//! or the same error at the same line and column.

use proptest::prelude::*;

use super::*;
use crate::load::{load_str, load_with, ConfigError};

/// What a load produced, comparable: the entries as written and parsed, or the error.
#[allow(
    clippy::result_large_err,
    reason = "ConfigError as load_str returns it"
)]
fn outcome(result: Result<crate::Config, ConfigError>) -> Result<Vec<String>, ConfigError> {
    result.map(|config| {
        let policy = &config.policy;
        let describe = |p: &Pattern| format!("{} {:?} {:?}", p.text(), p.host(), p.ports);
        let allow = policy
            .allow()
            .iter()
            .map(|p| format!("allow {}", describe(p)));
        let deny = policy
            .deny()
            .iter()
            .map(|p| format!("deny {}", describe(p)));
        allow.chain(deny).collect()
    })
}

fn both_ways(
    text: &str,
) -> (
    Result<Vec<String>, ConfigError>,
    Result<Vec<String>, ConfigError>,
) {
    (
        outcome(load_str(text, "policy.yaml")),
        outcome(load_with(text, "policy.yaml", |_| None)),
    )
}

/// Entry lines, well and badly written, and lines that may end or break a list.
fn line() -> impl Strategy<Value = String> {
    let good = [
        "a.example",
        "Api.Example.COM.",
        ".b.example",
        "*.c.example",
        "d.example:80,443",
        "e.example:8000-8999",
        "f.example:*",
        "10.0.0.0/8",
        "10.1.2.3",
        "fd00::/8",
        "a,b.example",
        "a.example # note",
        "1.2.3.4.5",
        "example",
        "x-y_z.example:443",
    ];
    let odd = [
        "::1",
        "[::1]:443",
        "bücher.example",
        "a.example:",
        "*.example",
        "*",
        "123",
        "1.5",
        "0x1f",
        "1e3",
        ".inf",
        ".NaN",
        "null",
        "~",
        "true",
        "yes",
        "0o17",
        "+1",
        "-1",
        "a.example #note",
        "a.example#x",
        "a.example b",
        "&x a.example",
        "!!str a.example",
        "[a.example]",
        "{host: a.example}",
        "host: a.example",
        "{host: a.example, via: direct}",
        "http://a.example/",
        "a..example",
        "",
        "- a.example",
        "a.example:99999",
        "1.2.3",
    ];
    let entry = prop_oneof![
        40 => prop::sample::select(good.to_vec()),
        1 => prop::sample::select(odd.to_vec()),
    ]
    .prop_map(str::to_string);
    let quoted = prop_oneof![
        100 => entry.clone(),
        30 => entry.clone().prop_map(|e| format!("\"{e}\"")),
        30 => entry.clone().prop_map(|e| format!("'{e}'")),
        20 => entry.clone().prop_map(|e| format!("\"{e}\" # c")),
        1 => Just("\"a\\\\x.example\"".to_string()),
        1 => Just("\"a\\x2eexample\"".to_string()),
        1 => Just("'it''s.example'".to_string()),
    ];
    prop_oneof![
        300 => quoted.clone().prop_map(|e| format!("INDENT- {e}")),
        1 => quoted.prop_map(|e| format!("    - {e}")),
        1 => Just(String::new()),
        1 => Just("  # a comment".to_string()),
        1 => Just("  -".to_string()),
        1 => Just("    continued.example".to_string()),
        1 => Just("mode: report".to_string()),
        1 => Just("mode: \"report".to_string()),
        1 => Just("listen: [127.0.0.1:3128,".to_string()),
        1 => Just("  127.0.0.1:3129]".to_string()),
        1 => Just("unknown: 1".to_string()),
        1 => Just("allow:".to_string()),
        1 => Just("deny:".to_string()),
        1 => Just("allow: # list".to_string()),
        1 => Just("allow: []".to_string()),
        1 => Just("---".to_string()),
        1 => Just("\tx".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn lists_read_line_by_line_load_as_the_yaml_parser_loads_them(
        allow in prop::collection::vec(line(), 0..8),
        deny in prop::collection::vec(line(), 0..5),
        before in prop::option::of(prop::sample::select(vec![
            "mode: report",
            "listen: 127.0.0.1:3128",
            "# a comment",
            "mode: \"report",
            "unknown: 1",
            "listen: [127.0.0.1:3128,\n  127.0.0.1:3129]",
            "listen: [127.0.0.1:3128,\nallow:\n  - x.example]",
            "---",
            "- a.example",
        ])),
        final_newline in any::<bool>(),
        indent in prop::sample::select(vec!["", "  ", "   "]),
    ) {
        let mut text = String::new();
        if let Some(line) = before {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("allow:\n");
        text.push_str(&allow.join("\n"));
        text.push_str("\ndeny:\n");
        text.push_str(&deny.join("\n"));
        if final_newline {
            text.push('\n');
        }
        let text = text.replace("INDENT", indent);
        let (lifted, parsed) = both_ways(&text);
        prop_assert_eq!(lifted, parsed, "{}", text);
    }
}

#[test]
fn a_plain_list_is_read_line_by_line_and_its_lines_emptied() {
    let text = "mode: report\nallow:\n  - a.example\n  - \".b.example:443\" # why\n\n  # c\ndeny:\n- '*.c.example'\nlisten: 127.0.0.1:3128\n";
    let lifted = lift(text).expect("read line by line");
    assert_eq!(
        lifted.rest,
        "mode: report\nallow:\n\n\n\n\ndeny:\n\nlisten: 127.0.0.1:3128\n"
    );
    let (by_lines, by_parser) = both_ways(text);
    assert_eq!(by_lines, by_parser);
    assert_eq!(by_lines.unwrap().len(), 3);
}

#[test]
fn anything_unsure_is_left_to_the_parser() {
    for text in [
        "allow:\n  - 123\n",
        "allow:\n  - a.example\n    b.example\n",
        "allow:\n  - *.a.example\n",
        "allow:\n  - a.example\n  -\n",
        "allow: &list\n  - a.example\n",
        "allow:\n  - a.example\r\n",
        "mode: \"enforce\nallow:\n  - a.example\n\"\n",
        "allow:\n  - not a pattern\n",
        "---\nallow:\n  - a.example\n",
    ] {
        assert!(lift(text).is_none(), "{text:?}");
    }
}

#[test]
fn an_error_after_a_long_list_keeps_its_line_and_column() {
    let mut text = String::from("allow:\n");
    for i in 0..1000 {
        text.push_str(&format!("  - host{i}.example\n"));
    }
    text.push_str("timeouts:\n  dail: 5s\n");
    assert!(lift(&text).is_some());
    let (by_lines, by_parser) = both_ways(&text);
    let error = by_lines.unwrap_err();
    assert_eq!(Err::<Vec<String>, _>(error.clone()), by_parser);
    assert_eq!((error.line, error.column), (Some(1003), Some(3)));
    assert_eq!(error.hint.as_deref(), Some("did you mean `dial`?"));
}
