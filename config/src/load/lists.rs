//! Long `allow` and `deny` lists, read without the YAML parser.
//!
//! serde_yaml_ng holds every event of a document in memory before it deserialises any of it:
//! for a list of a million names that is a million events of ~100 bytes and a copy of each
//! scalar, several times what the compiled policy needs, and most of the loading time. A
//! top-level list written the plain way — one `- entry` per line, the entry plain, `"quoted"` or
//! `'quoted'` and followed by nothing but a comment — is read here line by line instead, and
//! its lines are blanked (line breaks kept) in the text the YAML parser then reads, so every
//! other position, and every error outside the list, stays exactly where it was.
//!
//! Anything this reader is not sure it reads exactly as YAML would — a tab, a CR, a multi-line
//! or flow value, an anchor, a scalar YAML would take for a number, a null or a boolean, an
//! entry that is not a valid pattern — leaves the whole file to the YAML parser, so errors and
//! their line and column are the parser's, as before.

use crate::pattern::Pattern;
use crate::raw::{PatternEntry, RawFile};

/// The lists read here, and the text left for the YAML parser.
#[derive(Debug)]
pub struct Lifted {
    /// The file with the lists' entry lines emptied.
    pub rest: String,
    allow: Option<Vec<Pattern>>,
    deny: Option<Vec<Pattern>>,
}

impl Lifted {
    /// Puts the lists read here into what the YAML parser read from the rest.
    pub fn restore(self, raw: &mut RawFile) {
        if let Some(allow) = self.allow {
            raw.allow.patterns = allow;
        }
        if let Some(deny) = self.deny {
            raw.deny = deny.into_iter().map(PatternEntry).collect();
        }
    }
}

/// The `allow` and `deny` lists of `text` if they can be read line by line (see the module);
/// `None` leaves the whole text to the YAML parser.
pub fn lift(text: &str) -> Option<Lifted> {
    if text.contains(['\t', '\r']) {
        return None;
    }
    let mut lifted = Lifted {
        rest: String::new(),
        allow: None,
        deny: None,
    };
    // Byte ranges of whole lines to empty.
    let mut emptied = Vec::new();
    let mut at = 0;
    while at <= text.len() {
        let line = line_at(text, at);
        let next = at + line.len() + 1;
        if is_blank_or_comment(line) || line.starts_with(' ') {
            if !balanced(line) {
                return None;
            }
            at = next;
            continue;
        }
        let key = top_level_key(line)?;
        let slot = match key {
            "allow" => &mut lifted.allow,
            "deny" => &mut lifted.deny,
            _ => {
                if !balanced(line) {
                    return None;
                }
                at = next;
                continue;
            }
        };
        // A key given twice is the parser's error to report.
        if slot.is_some() || !is_blank_or_comment(&line[key.len() + 1..]) {
            return None;
        }
        let (patterns, end) = read_list(text, next)?;
        if !patterns.is_empty() {
            *slot = Some(patterns);
            emptied.push((next, end.min(text.len())));
        }
        at = end;
    }
    if emptied.is_empty() {
        return None;
    }
    let mut rest = String::with_capacity(text.len() / 8);
    let mut copied = 0;
    for (start, end) in emptied {
        rest.push_str(&text[copied..start]);
        let breaks = text[start..end].bytes().filter(|b| *b == b'\n').count();
        rest.extend(std::iter::repeat_n('\n', breaks));
        copied = end;
    }
    rest.push_str(&text[copied..]);
    lifted.rest = rest;
    Some(lifted)
}

/// The line starting at byte `at`, without its line break.
fn line_at(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    // memchr: this runs for every line of a file of a million, where `str::find`'s per-call
    // set-up cost more than the search of a short line.
    memchr::memchr(b'\n', rest.as_bytes()).map_or(rest, |end| &rest[..end])
}

/// The block sequence whose first line starts at byte `start`: its patterns and the byte where
/// the line after it starts (past the end of `text` when the list ends the file).
fn read_list(text: &str, start: usize) -> Option<(Vec<Pattern>, usize)> {
    // First its extent and size, so the list is allocated once, at its length.
    let mut entries = 0;
    let mut indent = None;
    let mut at = start;
    while at <= text.len() {
        let line = line_at(text, at);
        if !is_blank_or_comment(line) {
            let spaces = line.len() - line.trim_start_matches(' ').len();
            match (indent, line[spaces..].starts_with('-')) {
                // The first entry sets the indentation of the list.
                (None, true) => indent = Some(spaces),
                (Some(i), true) if i == spaces => {}
                // A line at column 0 that is not an entry ends the list (`top_level_key`
                // checks it).
                (_, false) if spaces == 0 => break,
                _ => return None,
            }
            entries += 1;
        }
        at += line.len() + 1;
    }
    let end = at;
    let mut patterns = Vec::with_capacity(entries);
    let mut at = start;
    while at < end {
        let line = line_at(text, at);
        at += line.len() + 1;
        if is_blank_or_comment(line) {
            continue;
        }
        let entry = line.trim_start_matches(' ').strip_prefix("- ")?;
        patterns.push(Pattern::parse(entry_text(entry)?).ok()?);
    }
    Some((patterns, end))
}

/// The scalar of an entry line (after `- `), if it is one YAML reads as that very string.
fn entry_text(entry: &str) -> Option<&str> {
    let entry = entry.trim_start_matches(' ');
    let (scalar, after) = match entry.as_bytes().first()? {
        quote @ (b'"' | b'\'') => {
            let close = entry[1..].find(*quote as char)? + 1;
            let inner = &entry[1..close];
            // No escapes (`\` in "…", `''` in '…'), only printable ASCII.
            if inner
                .bytes()
                .any(|b| !(b' '..=b'~').contains(&b) || b == b'\\')
            {
                return None;
            }
            (inner, &entry[close + 1..])
        }
        _ => {
            let end = entry.find(' ').unwrap_or(entry.len());
            let scalar = &entry[..end];
            if !is_plain_string(scalar) {
                return None;
            }
            (scalar, &entry[end..])
        }
    };
    // Nothing but spaces and a comment (which needs a space before its `#`) may follow.
    let trailing = after.trim_start_matches(' ');
    let comment_ok =
        trailing.is_empty() || (trailing.starts_with('#') && trailing.len() < after.len());
    comment_ok.then_some(scalar)
}

/// A plain scalar YAML reads as a string, not as a null, a boolean or a number, and that cannot
/// start or be anything else (an alias, a tag, a flow collection, a key).
fn is_plain_string(scalar: &str) -> bool {
    let bytes = scalar.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || *first == b'.')
        || scalar.ends_with(':')
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/*,".contains(b))
    {
        return false;
    }
    if matches!(
        scalar,
        "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
    ) {
        return false;
    }
    // Anything that might be a number (decimal, hex, octal, binary, float, inf, nan) is left to
    // the parser; two dots make an address or a name, never a number.
    let lower = scalar.to_ascii_lowercase();
    let numeric_letters = bytes
        .iter()
        .all(|b| b.is_ascii_hexdigit() || b"xXoO_.+-".contains(b));
    let number_like = (numeric_letters && bytes.iter().filter(|b| **b == b'.').count() < 2)
        || lower.ends_with("inf")
        || lower.ends_with("infinity")
        || lower.ends_with("nan");
    !number_like
}

fn is_blank_or_comment(line: &str) -> bool {
    let rest = line.trim_start_matches(' ');
    rest.is_empty() || rest.starts_with('#')
}

/// `key:` at column 0, alone or followed by a value; `None` for anything else there (a document
/// marker, a directive, a quoted or complex key, a flow collection), which is the parser's.
fn top_level_key(line: &str) -> Option<&str> {
    let end = line.find(':')?;
    let key = &line[..end];
    let after = &line[end + 1..];
    let word = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (word && (after.is_empty() || after.starts_with(' '))).then_some(key)
}

/// No quote or bracket left open on this line: a value that goes on over the next lines could
/// hold a line that looks like `allow:`.
fn balanced(line: &str) -> bool {
    let count = |c: u8| line.bytes().filter(|b| *b == c).count();
    is_blank_or_comment(line)
        || (count(b'"') % 2 == 0
            && count(b'\'') % 2 == 0
            && count(b'[') == count(b']')
            && count(b'{') == count(b'}'))
}

#[cfg(test)]
mod tests;
