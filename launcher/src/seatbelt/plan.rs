//! What a run's Seatbelt profile holds, decided with the same functions as the Linux sandbox:
//! the writable roots checked the same way (`protect::refuse_home`, and no root holding what
//! the sandbox keeps shut), what programs run code from (`protect::survey`: its read-only and
//! pinned paths, and the places it watches, which on macOS are denied by path whether they
//! exist or not), and the secrets (`secrets::discover` and the caller's, plus what only macOS
//! has), each under both its names when a link leads to it, and with every directory between it
//! and a writable root made unmovable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::Plan;
use crate::protect::{self, Bind, Watch};

/// macOS's own credential stores under a home directory, besides `secrets::HOME_SECRETS`.
pub const MAC_HOME_SECRETS: [&str; 9] = [
    "Library/Keychains",
    "Library/Cookies",
    "Library/Safari",
    "Library/Mail",
    "Library/Messages",
    "Library/Application Support/Google/Chrome",
    "Library/Application Support/Firefox/Profiles",
    "Library/Application Support/Microsoft Edge",
    "Library/Group Containers/group.com.apple.notes",
];

/// What `decide` needs to know about the run and the machine.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub port: u16,
    /// Absolute, links resolved (`request::absolute`).
    pub cwd: &'a Path,
    pub allow_write: &'a [PathBuf],
    pub read_only: bool,
    pub allow_write_home: bool,
    pub homes: &'a [PathBuf],
    /// The secrets found (`secrets::discover`, `--deny-read`, password files): existing paths.
    pub secrets: &'a [PathBuf],
    /// The run's private temporary directory, and the shared one it lies in (the caller's
    /// `TMPDIR`), which no writable root may be or hold.
    pub temp: &'a Path,
    pub shared_temp: &'a Path,
}

/// The plan, what the check at exit needs, and what to tell the user.
#[derive(Debug)]
pub struct Decided {
    pub plan: Plan,
    pub watch: Watch,
    /// Said even with `--quiet` (what `--allow-write-home` leaves open).
    pub warnings: Vec<String>,
    /// Writable roots that stay read-only because they lie in a protected place.
    pub notes: Vec<String>,
}

pub fn decide(
    inputs: &Inputs<'_>,
    var: &dyn Fn(&str) -> Option<OsString>,
    since: (i64, i64),
) -> Result<Decided, String> {
    check_writable(inputs.cwd, "the working directory", inputs.shared_temp)?;
    for path in inputs.allow_write {
        check_writable(path, "--allow-write", inputs.shared_temp)?;
    }
    let roots: Vec<PathBuf> = match inputs.read_only {
        true => Vec::new(),
        false => std::iter::once(inputs.cwd)
            .chain(inputs.allow_write.iter().map(PathBuf::as_path))
            .filter(|p| p.exists())
            .map(Path::to_path_buf)
            .collect(),
    };
    let warnings = protect::refuse_home(&roots, inputs.homes, inputs.allow_write_home)?;
    let survey = protect::survey(&roots, inputs.homes, var, since);
    let mut read_only = survey.watch.places.clone();
    let mut unmovable = Vec::new();
    for bind in survey.binds {
        match bind {
            Bind::ReadOnly(path) => read_only.push(path),
            Bind::Pin(path) => unmovable.push(path),
        }
    }
    let mac_secrets = inputs
        .homes
        .iter()
        .flat_map(|home| MAC_HOME_SECRETS.iter().map(move |p| home.join(p)))
        .filter(|p| p.exists());
    let mut secrets = Vec::new();
    // Where each really is, through links, also when it does not exist (yet).
    let mut resolver = protect::places::Resolver::default();
    for path in inputs.secrets.iter().cloned().chain(mac_secrets) {
        let real = resolver.real(&path);
        if real != path {
            secrets.push(real.clone());
        }
        for root in roots.iter().filter(|root| real.starts_with(root)) {
            let between = real
                .ancestors()
                .skip(1)
                .take_while(|dir| dir.starts_with(root));
            unmovable.extend(between.map(Path::to_path_buf));
        }
        secrets.push(path);
    }
    for list in [&mut read_only, &mut unmovable, &mut secrets] {
        list.sort();
        list.dedup();
    }
    Ok(Decided {
        plan: Plan {
            proxy_port: inputs.port,
            writable: roots,
            temp: inputs.temp.to_path_buf(),
            secrets,
            unmovable,
            read_only,
        },
        watch: survey.watch,
        warnings,
        notes: survey.notes,
    })
}

/// Directories no writable root may be or hold: the devices, and the temporary directories
/// the host's programs share (their sockets and files live there; the command gets its own).
const SHUT: [&str; 4] = ["/dev", "/private/tmp", "/private/var/folders", "/tmp"];

/// Refuses `/`, anything under `/dev`, and a root that is or holds a `SHUT` directory or the
/// caller's shared temporary directory: writable, it would undo the profile's own limits.
pub fn check_writable(path: &Path, what: &str, shared_temp: &Path) -> Result<(), String> {
    let shut = SHUT
        .iter()
        .map(Path::new)
        .chain(std::iter::once(shared_temp))
        .any(|dir| dir.starts_with(path));
    if path == Path::new("/") || path.starts_with("/dev") || shut {
        return Err(format!(
            "{what} {} cannot be writable in the sandbox: it is or holds the devices or the \
             temporary directories the host's programs share; use a project directory",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
