//! `egress-proxy passwd FILE USER`: adds a user to a users file or changes its password. The
//! password comes from a prompt (echo off, asked twice) or, when standard input is not a
//! terminal, its first line; never from the command line, where any local user could read it.
//! The file is replaced atomically (a running proxy reloading it sees the old or the new one),
//! new files are private (0600), and every other line is kept as it was.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use egress_config::identity::{hash_password, valid_name, Users, DEFAULT_COST};

pub fn run(file: &Path, user: &str) -> ExitCode {
    match update(file, user) {
        Ok(verb) => {
            eprintln!("{verb} user {user} in {}", file.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("egress-proxy passwd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn update(file: &Path, user: &str) -> Result<&'static str, String> {
    valid_name(user).map_err(|(message, hint)| format!("{message} ({hint})"))?;
    let old = match std::fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    if let Some(text) = &old {
        // Refuse to rewrite a file the proxy would refuse to load.
        Users::parse(text).map_err(|e| format!("{}:{}: {}", file.display(), e.line, e.message))?;
    }
    let password = read_password(user)?;
    let hash = hash_password(password.as_bytes(), DEFAULT_COST)?;
    let entry = format!("{user}:{hash}");
    let mut replaced = false;
    let mut lines: Vec<String> = Vec::new();
    for line in old.as_deref().unwrap_or("").lines() {
        if line.split_once(':').is_some_and(|(name, _)| name == user) {
            lines.push(entry.clone());
            replaced = true;
        } else {
            lines.push(line.to_string());
        }
    }
    if !replaced {
        lines.push(entry);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomically(file, &text)?;
    Ok(if replaced { "changed" } else { "added" })
}

/// The password: prompted for twice on a terminal, else the first line of standard input.
fn read_password(user: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let password = if rustix::termios::isatty(&stdin) {
        let first = prompt(&format!("Password for {user}: "))?;
        let again = prompt("Again: ")?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > 72 {
        // bcrypt reads 72 bytes; more would look stronger than it is.
        return Err("the password is longer than 72 bytes (bcrypt's limit)".into());
    }
    Ok(password)
}

/// Reads a line from the terminal with echo off, restoring the terminal afterwards.
fn prompt(text: &str) -> Result<String, String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|e| format!("cannot turn off the echo: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Writes `text` next to `file` and renames it over `file`: readers see the old file or the new
/// one, never half of one. A new file is readable by its owner only.
fn write_atomically(file: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let name = file.file_name().ok_or("the users file needs a file name")?;
    let temp = dir
        .unwrap_or(Path::new("."))
        .join(format!(".{}.egress-passwd", name.to_string_lossy()));
    let mode = std::fs::metadata(file).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temp, file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}: {e}", file.display())
    })
}
