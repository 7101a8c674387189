//! Reading git's configuration files: a parser of git-config(1)'s syntax (sections, quoted
//! subsections, keys, quoted and continued values, comments, a key after `]` on the same line),
//! the keys that are known to run nothing (`inert`), and the files and directories a config
//! names that git runs or reads as more configuration (`named_paths`).
//!
//! The parser is strict where git is: what it cannot read, the caller treats as running code.

/// One `section[.subsection].key[=value]` line. Section and key lowercased, as git compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub subsection: Option<String>,
    pub key: String,
    /// `None` for a bare key (boolean true).
    pub value: Option<String>,
}

/// Parses the text of a config file; `Err` with a line number where git would refuse it too.
pub fn parse(text: &str) -> Result<Vec<Entry>, usize> {
    let mut parser = Parser {
        chars: text
            .strip_prefix('\u{feff}')
            .unwrap_or(text)
            .chars()
            .collect(),
        at: 0,
        line: 1,
    };
    parser.entries()
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn entries(&mut self) -> Result<Vec<Entry>, usize> {
        let mut out = Vec::new();
        let mut section: Option<(String, Option<String>)> = None;
        while let Some(c) = self.next() {
            match c {
                c if c.is_whitespace() => {}
                '#' | ';' => self.skip_line(),
                '[' => section = Some(self.header()?),
                c if c.is_ascii_alphabetic() => {
                    let (name, sub) = section.clone().ok_or(self.line)?;
                    let mut key = c.to_ascii_lowercase().to_string();
                    while let Some(k) = self
                        .peek()
                        .filter(|k| k.is_ascii_alphanumeric() || *k == '-')
                    {
                        key.push(k.to_ascii_lowercase());
                        self.at += 1;
                    }
                    let value = self.value()?;
                    out.push(Entry {
                        section: name,
                        subsection: sub,
                        key,
                        value,
                    });
                }
                _ => return Err(self.line),
            }
        }
        Ok(out)
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.next() {
            if c == '\n' {
                return;
            }
        }
    }

    /// After `[`: `name]`, `name "sub"]` or the old `name.sub]`.
    fn header(&mut self) -> Result<(String, Option<String>), usize> {
        let mut name = String::new();
        loop {
            match self.next().ok_or(self.line)? {
                ']' => break,
                c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => {
                    name.push(c.to_ascii_lowercase())
                }
                c if c == ' ' || c == '\t' => {
                    while matches!(self.peek(), Some(' ' | '\t')) {
                        self.at += 1;
                    }
                    if self.next() != Some('"') {
                        return Err(self.line);
                    }
                    let mut sub = String::new();
                    loop {
                        match self.next().ok_or(self.line)? {
                            '\n' => return Err(self.line),
                            '"' => break,
                            '\\' => sub.push(self.next().filter(|c| *c != '\n').ok_or(self.line)?),
                            c => sub.push(c),
                        }
                    }
                    if self.next() != Some(']') || name.is_empty() {
                        return Err(self.line);
                    }
                    return Ok((name, Some(sub)));
                }
                _ => return Err(self.line),
            }
        }
        if name.is_empty() {
            return Err(self.line);
        }
        Ok(match name.split_once('.') {
            Some((section, sub)) => (section.to_string(), Some(sub.to_string())),
            None => (name, None),
        })
    }

    /// After a key: nothing (a boolean), or `= value` up to the end of the line.
    fn value(&mut self) -> Result<Option<String>, usize> {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
        match self.peek() {
            None => return Ok(None),
            Some('\n') => {
                self.next();
                return Ok(None);
            }
            Some('#' | ';') => {
                self.skip_line();
                return Ok(None);
            }
            Some('=') => self.at += 1,
            Some(_) => return Err(self.line),
        }
        let mut value = String::new();
        // Unquoted trailing whitespace is dropped: remember where the kept part ends.
        let mut kept = 0;
        let mut quoted = false;
        let mut started = false;
        while let Some(c) = self.next() {
            match c {
                '\n' if quoted => return Err(self.line),
                '\n' => break,
                '#' | ';' if !quoted => {
                    self.skip_line();
                    break;
                }
                '"' => {
                    quoted = !quoted;
                    started = true;
                    kept = value.len();
                }
                '\\' => {
                    let escaped = match self.next().ok_or(self.line)? {
                        '\n' => continue,
                        'n' => '\n',
                        't' => '\t',
                        'b' => '\u{8}',
                        c @ ('\\' | '"') => c,
                        _ => return Err(self.line),
                    };
                    value.push(escaped);
                    started = true;
                    kept = value.len();
                }
                c if c == ' ' || c == '\t' => {
                    if started || quoted {
                        value.push(c);
                        if quoted {
                            kept = value.len();
                        }
                    }
                }
                c => {
                    value.push(c);
                    started = true;
                    kept = value.len();
                }
            }
        }
        if quoted {
            return Err(self.line);
        }
        value.truncate(kept);
        Ok(Some(value))
    }
}

/// Whether `entry` is known to run nothing, read nothing more and point git nowhere else: what
/// `git init`, `git clone`, `git remote`, `git branch`, `git submodule` and everyday settings
/// write. Everything else (aliases, hooks, pagers, editors, drivers, helpers, includes, URL
/// rewrites, protocol permissions, keys this list does not know) is treated as code.
pub fn inert(entry: &Entry) -> bool {
    let key = entry.key.as_str();
    let value = entry.value.as_deref().unwrap_or("");
    let sub = entry.subsection.as_deref();
    let remote_url = || !(value.starts_with("ext::") || value.starts_with("fd::"));
    match (entry.section.as_str(), sub) {
        ("core", None) => [
            "repositoryformatversion",
            "filemode",
            "bare",
            "logallrefupdates",
            "ignorecase",
            "precomposeunicode",
            "symlinks",
            "autocrlf",
            "eol",
            "safecrlf",
            "worktree",
            "sparsecheckout",
            "sparsecheckoutcone",
            "checkstat",
            "trustctime",
            "quotepath",
            "compression",
            "loosecompression",
            "bigfilethreshold",
            "untrackedcache",
            "splitindex",
            "commitgraph",
            "multipackindex",
            "abbrev",
            "protecthfs",
            "protectntfs",
            "preloadindex",
            "fsync",
            "fsyncmethod",
        ]
        .contains(&key),
        ("remote", Some(_)) => match key {
            "url" | "pushurl" => remote_url(),
            _ => [
                "fetch",
                "push",
                "tagopt",
                "mirror",
                "prune",
                "prunetags",
                "promisor",
                "partialclonefilter",
                "skipdefaultupdate",
                "skipfetchall",
                "followremotehead",
            ]
            .contains(&key),
        },
        ("branch", Some(_)) => {
            ["remote", "merge", "rebase", "pushremote", "description"].contains(&key)
        }
        ("submodule", Some(_)) => match key {
            "url" => remote_url(),
            "update" => !value.starts_with('!'),
            _ => [
                "active",
                "branch",
                "fetchrecursesubmodules",
                "ignore",
                "shallow",
            ]
            .contains(&key),
        },
        ("submodule", None) => ["active", "recurse", "fetchjobs"].contains(&key),
        ("user", None) => ["name", "email"].contains(&key),
        ("init", None) => key == "defaultbranch",
        ("extensions", None) => [
            "objectformat",
            "worktreeconfig",
            "refstorage",
            "partialclone",
            "preciousobjects",
            "noop",
        ]
        .contains(&key),
        ("pull", None) => ["rebase", "ff"].contains(&key),
        ("push", None) => ["default", "autosetupremote", "followtags"].contains(&key),
        ("fetch", None) => ["prune", "prunetags", "recursesubmodules", "parallel"].contains(&key),
        ("merge", None) => ["ff", "conflictstyle", "renames"].contains(&key),
        ("rebase", None) => ["autosquash", "autostash", "updaterefs"].contains(&key),
        ("diff", None) => ["renames", "algorithm", "mnemonicprefix", "noprefix"].contains(&key),
        ("gc", None) => ["auto", "autopacklimit", "autodetach"].contains(&key),
        ("maintenance", None) => ["auto", "strategy"].contains(&key),
        ("index", None) => ["version", "threads", "skiphash", "sparse"].contains(&key),
        ("feature", None) => ["manyfiles", "experimental"].contains(&key),
        ("commit" | "tag", None) => key == "gpgsign",
        ("receive", None) => ["denycurrentbranch", "denynonfastforwards"].contains(&key),
        ("rerere", None) => ["enabled", "autoupdate"].contains(&key),
        ("protocol", None) => key == "version",
        ("color" | "advice", _) => true,
        ("lfs", None) => {
            ["url", "pushurl", "repositoryformatversion", "locksverify"].contains(&key)
        }
        ("lfs", Some(_)) => ["access", "locksverify"].contains(&key),
        // What `git lfs install --local` writes, exactly.
        ("filter", Some("lfs")) => {
            matches!(
                (key, value),
                ("clean", "git-lfs clean -- %f")
                    | ("smudge", "git-lfs smudge -- %f")
                    | ("process", "git-lfs filter-process")
                    | ("required", "true")
            ) || (key == "required" && entry.value.is_none())
        }
        _ => false,
    }
}

/// What a config names that the user's git would run or read: `(path as written, relative to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// `include.path`, `includeIf.*.path`: relative to the config file's own directory.
    Include(String),
    /// `core.hooksPath`: relative to the top of the work tree git runs in.
    HooksDir(String),
    /// The program of a command-valued key (a pager, an editor, a filter, an alias…), when it is
    /// written as a path: relative to the top of the work tree.
    Program(String),
}

/// The paths `entries` name (see `Named`).
pub fn named_paths(entries: &[Entry]) -> Vec<Named> {
    let mut out = Vec::new();
    for entry in entries {
        let Some(value) = entry.value.as_deref() else {
            continue;
        };
        let key = entry.key.as_str();
        match (entry.section.as_str(), entry.subsection.as_deref(), key) {
            ("include" | "includeif", _, "path") => out.push(Named::Include(value.into())),
            ("core", None, "hookspath") => out.push(Named::HooksDir(value.into())),
            (section, sub, key) if runs_program(section, sub, key) => {
                let command = value.trim_start().trim_start_matches('!').trim_start();
                let program = command.split_whitespace().next().unwrap_or("");
                if program.contains('/') {
                    out.push(Named::Program(program.into()));
                }
            }
            _ => {}
        }
    }
    out
}

/// Keys whose value is a command git (or a tool it starts) runs.
fn runs_program(section: &str, sub: Option<&str>, key: &str) -> bool {
    match (section, sub) {
        ("core", None) => [
            "fsmonitor",
            "pager",
            "editor",
            "sshcommand",
            "askpass",
            "gitproxy",
            "alternaterefscommand",
        ]
        .contains(&key),
        ("sequence", None) => key == "editor",
        ("pager" | "alias", _) => true,
        ("filter", Some(_)) => ["clean", "smudge", "process"].contains(&key),
        ("diff", Some(_)) => ["textconv", "command"].contains(&key),
        ("diff", None) => key == "external",
        ("merge", Some(_)) => key == "driver",
        ("credential", _) => key == "helper",
        ("gpg", _) => key == "program",
        ("interactive", None) => key == "difffilter",
        ("difftool" | "mergetool" | "browser" | "man", Some(_)) => ["cmd", "path"].contains(&key),
        ("hook", Some(_)) => key == "command",
        ("trailer", Some(_)) => ["command", "cmd"].contains(&key),
        ("tar", Some(_)) => key == "command",
        ("imap", None) => key == "tunnel",
        ("sendemail", _) => key.ends_with("cmd"),
        ("submodule", Some(_)) => key == "update",
        ("uploadpack", None) => key == "packobjectshook",
        _ => false,
    }
}

#[cfg(test)]
mod tests;
