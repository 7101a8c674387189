//! Adding one entry to the policy text's top-level `allow` or `deny` list, the way a person
//! would: the rest of the text — comments, order, quoting — stays as written. The result is
//! checked by loading it (the caller does), so a text this cannot edit is refused, never
//! written half-right.

/// Which list an entry goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Allow,
    Deny,
}

impl List {
    pub const fn key(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::Deny => "deny",
        }
    }
}

/// `text` with `entry` appended to its top-level `list`: into a one-line flow list
/// (`allow: [a, b]`), after the last item of a block list (`allow:\n  - a`), or as a new list
/// at the end. `Err` for a layout this does not edit (a flow list over several lines).
pub fn add(text: &str, list: List, entry: &str) -> Result<String, String> {
    let quoted = serde_json::to_string(entry).map_err(|e| e.to_string())?;
    let key = format!("{}:", list.key());
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(at) = lines.iter().position(|l| l.starts_with(&key)) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{}:\n  - {quoted}\n", list.key()));
        return Ok(out);
    };
    let rest = lines[at][key.len()..].trim_end_matches(['\n', '\r']);
    let value = strip_comment(rest).trim();
    let mut out = String::with_capacity(text.len() + quoted.len() + 8);
    if value.starts_with('[') {
        let Some(close) = rest.rfind(']') else {
            return Err(format!(
                "the `{}` list spans several lines; add the entry in the editor",
                list.key()
            ));
        };
        let inside = rest[rest.find('[').unwrap_or(0) + 1..close].trim();
        let joined = if inside.is_empty() {
            quoted
        } else {
            format!(", {quoted}")
        };
        lines[..at].iter().for_each(|l| out.push_str(l));
        out.push_str(&key);
        out.push_str(&rest[..close]);
        out.push_str(&joined);
        out.push_str(&lines[at][key.len() + close..]);
        lines[at + 1..].iter().for_each(|l| out.push_str(l));
        return Ok(out);
    }
    if !value.is_empty() {
        return Err(format!(
            "the `{}` key holds no list this can extend; add the entry in the editor",
            list.key()
        ));
    }
    // A block list: its items are the following indented lines (blank and comment lines may be
    // between them); the entry goes after the last item, indented like the first.
    let mut last = at;
    let mut indent = "  ".to_string();
    for (n, (i, line)) in block_items(&lines, at).enumerate() {
        if n == 0 {
            indent = line[..line.len() - line.trim_start().len()].to_string();
        }
        last = i;
    }
    lines[..=last].iter().for_each(|l| out.push_str(l));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{indent}- {quoted}\n"));
    lines[last + 1..].iter().for_each(|l| out.push_str(l));
    Ok(out)
}

/// The lines of the block list whose key is on line `at`, with their positions: the indented
/// lines that follow it, blank and comment lines skipped, up to the next top-level line.
fn block_items<'a>(lines: &'a [&'a str], at: usize) -> impl Iterator<Item = (usize, &'a str)> {
    lines
        .iter()
        .copied()
        .enumerate()
        .skip(at + 1)
        .filter(|(_, line)| {
            let trimmed = line.trim_start();
            !(trimmed.trim().is_empty() || trimmed.starts_with('#'))
        })
        .take_while(|(_, line)| line.starts_with([' ', '\t', '-']))
}

/// `text` without the item `entry` of its top-level `list` (compared unquoted), the rest as
/// written: its line goes from a block list, its item from a one-line flow list. `Err` when
/// the list holds no such item, or is laid out in a way this does not edit.
pub fn remove(text: &str, list: List, entry: &str) -> Result<String, String> {
    let key = format!("{}:", list.key());
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let missing = || format!("the `{}` list holds no entry {entry:?}", list.key());
    let at = lines
        .iter()
        .position(|l| l.starts_with(&key))
        .ok_or_else(missing)?;
    let rest = lines[at][key.len()..].trim_end_matches(['\n', '\r']);
    let value = strip_comment(rest).trim();
    if value.starts_with('[') {
        let (Some(open), Some(close)) = (rest.find('['), rest.rfind(']')) else {
            return Err(format!(
                "the `{}` list spans several lines; remove the entry in the editor",
                list.key()
            ));
        };
        let items: Vec<&str> = flow_items(&rest[open + 1..close]);
        let kept: Vec<&str> = items
            .iter()
            .copied()
            .filter(|i| unquote(i) != entry)
            .collect();
        if kept.len() == items.len() {
            return Err(missing());
        }
        let mut out = String::with_capacity(text.len());
        lines[..at].iter().for_each(|l| out.push_str(l));
        out.push_str(&key);
        out.push_str(&rest[..open + 1]);
        out.push_str(&kept.join(", "));
        out.push_str(&lines[at][key.len() + close..]);
        lines[at + 1..].iter().for_each(|l| out.push_str(l));
        return Ok(out);
    }
    let mut found = None;
    let mut others = 0;
    for (i, line) in block_items(&lines, at) {
        let item = line
            .trim_start()
            .strip_prefix('-')
            .map(|i| strip_comment(i).trim());
        if found.is_none() && item.is_some_and(|i| unquote(i) == entry) {
            found = Some(i);
        } else {
            others += 1;
        }
    }
    let found = found.ok_or_else(missing)?;
    let mut out = String::with_capacity(text.len());
    lines[..at].iter().for_each(|l| out.push_str(l));
    if others == 0 {
        // The last item: an empty list, not a key without a value (which is no list at all).
        let comment = &rest[strip_comment(rest).len()..];
        let end = &lines[at][key.len() + rest.len()..];
        out.push_str(&format!("{key} []"));
        if !comment.is_empty() {
            out.push(' ');
            out.push_str(comment);
        }
        out.push_str(end);
    } else {
        out.push_str(lines[at]);
    }
    lines[at + 1..found].iter().for_each(|l| out.push_str(l));
    lines[found + 1..].iter().for_each(|l| out.push_str(l));
    Ok(out)
}

/// The items of a one-line flow list's inside, split at the commas outside quotes (a quoted
/// entry may hold one: `"a.example:80,443"`).
fn flow_items(inside: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in inside.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                items.push(inside[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(inside[start..].trim());
    items.retain(|i| !i.is_empty());
    items
}

/// A list item as the loader reads it: without its surrounding quotes.
fn unquote(item: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = item.strip_prefix(q).and_then(|i| i.strip_suffix(q)) {
            return inner;
        }
    }
    item
}

/// The line without a trailing `# comment` (a `#` after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The entry "allow this host / domain" adds for `host:port` reached over a protocol whose
/// default port is `default_port`: the host, or its registrable domain as `.domain`; with
/// `:port` when asked, or when the port is not the protocol's default (else it would not cover
/// the request).
pub fn entry_for(
    host: &str,
    port: u16,
    default_port: u16,
    domain: bool,
    with_port: bool,
) -> String {
    let name = if domain {
        match registrable(host) {
            Some(d) => format!(".{d}"),
            None => host.to_string(),
        }
    } else {
        host.to_string()
    };
    let name = if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]")
    } else {
        name
    };
    if with_port || port != default_port {
        format!("{name}:{port}")
    } else {
        name
    }
}

/// The registrable domain of a name (the public suffix list's rule), `None` for an address.
pub fn registrable(host: &str) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    let domain = psl::domain_str(host)?;
    Some(domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_joins_the_list_as_written_and_nothing_else_moves() {
        let cases = [
            (
                "mode: ask\nallow: [a.example, b.example] # ours\ndeny: []\n",
                List::Allow,
                "mode: ask\nallow: [a.example, b.example, \"new.example\"] # ours\ndeny: []\n",
            ),
            (
                "allow: []\n",
                List::Allow,
                "allow: [\"new.example\"]\n",
            ),
            (
                "# top\nallow:\n    - a.example\n    # later\n    - b.example\n\ndeny: [x]\n",
                List::Allow,
                "# top\nallow:\n    - a.example\n    # later\n    - b.example\n    - \"new.example\"\n\ndeny: [x]\n",
            ),
            (
                "allow:\n- a.example\nmode: ask\n",
                List::Allow,
                "allow:\n- a.example\n- \"new.example\"\nmode: ask\n",
            ),
            (
                "mode: ask",
                List::Deny,
                "mode: ask\ndeny:\n  - \"new.example\"\n",
            ),
            (
                "allow: [a]\ndeny: [blocked.example]\n",
                List::Deny,
                "allow: [a]\ndeny: [blocked.example, \"new.example\"]\n",
            ),
        ];
        for (text, list, want) in cases {
            assert_eq!(
                add(text, list, "new.example").as_deref(),
                Ok(want),
                "{text}"
            );
        }
        assert!(add("allow: [a,\n  b]\n", List::Allow, "c").is_err());
        assert!(add("allow: a.example\n", List::Allow, "c").is_err());
    }

    #[test]
    fn an_entry_leaves_the_list_and_nothing_else_moves() {
        let cases = [
            (
                "allow: [a.example, \"b.example\", \"c:80,443\"] # ours\n",
                List::Allow,
                "b.example",
                "allow: [a.example, \"c:80,443\"] # ours\n",
            ),
            (
                "# top\nallow:\n  - a.example # why\n  # later\n  - 'b.example'\ndeny:\n  - b.example\n",
                List::Allow,
                "b.example",
                "# top\nallow:\n  - a.example # why\n  # later\ndeny:\n  - b.example\n",
            ),
            (
                "deny:\n- x.example\n- y.example\nmode: ask\n",
                List::Deny,
                "x.example",
                "deny:\n- y.example\nmode: ask\n",
            ),
            (
                "deny: # ours\n  - x.example\nmode: ask\n",
                List::Deny,
                "x.example",
                "deny: [] # ours\nmode: ask\n",
            ),
        ];
        for (text, list, entry, want) in cases {
            assert_eq!(remove(text, list, entry).as_deref(), Ok(want), "{text}");
        }
        assert!(remove("allow: [a]\n", List::Allow, "b").is_err());
        assert!(remove("allow: [a]\n", List::Deny, "a").is_err());
        assert!(remove("allow:\n  - a\nmode: ask\n  - b\n", List::Allow, "b").is_err());
    }

    #[test]
    fn the_entry_covers_the_request_it_was_made_for() {
        assert_eq!(
            entry_for("registry.npmjs.org", 443, 443, false, false),
            "registry.npmjs.org"
        );
        assert_eq!(
            entry_for("registry.npmjs.org", 443, 443, true, false),
            ".npmjs.org"
        );
        assert_eq!(
            entry_for("a.b.example.co.uk", 443, 443, true, true),
            ".example.co.uk:443"
        );
        assert_eq!(
            entry_for("example.com", 8443, 443, false, false),
            "example.com:8443"
        );
        assert_eq!(
            entry_for("127.0.0.1", 8080, 80, true, false),
            "127.0.0.1:8080"
        );
        assert_eq!(entry_for("::1", 443, 443, false, false), "[::1]");
    }
}
