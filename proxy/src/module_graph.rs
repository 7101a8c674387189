//! The workspace's modules depend on each other one way only: no import cycles between the
//! top-level modules of a crate, so each can be read knowing only the ones it names. A module's
//! `crate::` paths (outside comments and tests) are its edges.
//!
//! `cargo test -p egress-proxy --lib module_graph -- --nocapture` prints every crate's edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules of the same crate it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crates checked, relative to this crate's manifest.
const CRATES: [&str; 3] = ["src", "../config/src", "../launcher/src"];

#[test]
fn no_crate_has_an_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in CRATES {
        let graph = graph_of(&root.join(src));
        assert!(graph.len() > 3, "{src}: too few modules found: {graph:?}");
        println!("{src}:");
        for (module, names) in &graph {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            println!("  {module} -> {}", names.join(" "));
        }
        let cycles = cycles(&graph);
        println!("  cycles: {cycles:?}");
        assert!(cycles.is_empty(), "{src}: import cycles {cycles:?}");
    }
}

#[test]
fn the_parser_sees_every_form_of_path_and_skips_comments_and_tests() {
    // Spelled `CRATE` here so this file's own edges stay its real ones.
    let source = "use CRATE::{b::X, c::{self, Y}};\n\
                  use CRATE::a::Z;\n\
                  fn f() { CRATE::d::g(); CRATE::Reexported::new(); } // CRATE::e\n\
                  /// [`CRATE::e`]\n\
                  macro_rules! m { () => { $CRATE::e::h() } }\n\
                  #[cfg(test)]\nmod tests { use CRATE::e; }\n"
        .replace("CRATE", "crate");
    let root = "pub use f::{Other, Reexported};\npub use g::h::Deep as Renamed;\n";
    let exported = exports(root);
    assert_eq!(exported["Reexported"], "f");
    assert_eq!(exported["Renamed"], "g");
    let names: Vec<String> = names_in(&source, "a", &exported).into_iter().collect();
    assert_eq!(names, ["b", "c", "d", "f"]);
}

#[test]
fn a_cycle_through_three_modules_is_found() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
    }
    assert_eq!(
        cycles(&graph),
        [BTreeSet::from(["a", "b", "c"].map(String::from))]
    );
    graph.get_mut("c").unwrap().remove("a");
    assert!(cycles(&graph).is_empty());
}

/// Every top-level module of the crate rooted at `src` (the crate root itself names every
/// module and is left out) with the modules it names.
fn graph_of(src: &Path) -> Graph {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .find_map(|name| std::fs::read_to_string(src.join(name)).ok())
        .unwrap_or_default();
    let exported = exports(&root);
    let mut graph = Graph::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            let is_test = name == "tests.rs" || name.ends_with("_tests.rs");
            if !name.ends_with(".rs") || is_test {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap();
            let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
            if relative.components().count() == 1 && matches!(module, "lib" | "main") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            graph
                .entry(module.to_string())
                .or_default()
                .extend(names_in(&source, module, &exported));
        }
    }
    graph
}

/// What the crate root re-exports (`pub use module::{Name, ...}`): name → its module, so that
/// `crate::Name` counts as an edge to that module.
fn exports(root: &str) -> BTreeMap<String, String> {
    let mut exported = BTreeMap::new();
    for (at, _) in root.match_indices("pub use ") {
        let statement = &root[at + "pub use ".len()..];
        let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
        let Some((module, rest)) = statement.split_once("::") else {
            continue;
        };
        let items = match rest.trim_start().strip_prefix('{') {
            Some(group) => top_level_items(group),
            None => vec![rest],
        };
        for item in items {
            // `a::B`, `B` or `a::B as C`: the last word is the name the root gives it.
            if let Some(name) = item.split([' ', ':', '\n']).rfind(|w| !w.is_empty()) {
                exported.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    exported
}

/// The top-level modules `source` (part of `module`) names in `crate::` paths, leaving out
/// comments, `$crate` in macros and a trailing `#[cfg(test)] mod`. A name the root re-exports
/// stands for its module; any other name not a module is the root's own and is left out.
fn names_in(source: &str, module: &str, exported: &BTreeMap<String, String>) -> BTreeSet<String> {
    const TESTS: &str = "#[cfg(test)]\nmod ";
    let code = source.find(TESTS).map_or(source, |at| &source[..at]);
    let code: String = code
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let prefix = concat!("crate", "::");
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c == '$' || c == '_' || c.is_alphanumeric()) {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(top_level_items(group).into_iter().map(leading_ident));
        } else {
            names.insert(leading_ident(rest));
        }
    }
    names
        .into_iter()
        .map(|name| exported.get(&name).cloned().unwrap_or(name))
        .filter(|name| name != module && !name.is_empty())
        .collect()
}

/// The comma-separated items of a `{...}` group (given without its opening brace), nested
/// groups kept whole.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0, Vec::new());
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..at]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items
}

fn leading_ident(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| *c == '_' || c.is_alphanumeric())
        .collect()
}

/// The groups of modules that reach each other (each a cycle, or several sharing modules).
fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    let reach: BTreeMap<&String, BTreeSet<&String>> =
        graph.keys().map(|m| (m, reachable(graph, m))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for (module, from_here) in &reach {
        let group: BTreeSet<String> = from_here
            .iter()
            .filter(|other| reach.get(*other).is_some_and(|back| back.contains(module)))
            .map(|m| m.to_string())
            .collect();
        if group.len() > 1 && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// Every module reachable from `start`, itself included.
fn reachable<'a>(graph: &'a Graph, start: &'a String) -> BTreeSet<&'a String> {
    let mut seen = BTreeSet::from([start]);
    let mut pending = vec![start];
    while let Some(module) = pending.pop() {
        for next in graph.get(module).into_iter().flatten() {
            if seen.insert(next) {
                pending.push(next);
            }
        }
    }
    seen
}
