//! The admin token's file: found where the configuration says (or next to the policy file, or
//! in the state directory), created with a fresh random token and mode 0600 when missing, and
//! refused when others may read it. Errors name the file, never its content.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use egress_config::Secret;

/// The file's name in its default places.
const DEFAULT_NAME: &str = "admin.token";

/// Where the admin token lives: `configured`, else next to the policy file, else
/// `$XDG_STATE_HOME/egress` (or `~/.local/state/egress`).
pub fn location(configured: Option<&Path>, policy: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    if let Some(policy) = policy {
        let dir = policy.parent().filter(|d| !d.as_os_str().is_empty());
        return Ok(dir.unwrap_or(Path::new(".")).join(DEFAULT_NAME));
    }
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/state"),
            None => anyhow::bail!("no place for the admin token: set admin.token_file"),
        },
    };
    Ok(state.join("egress").join(DEFAULT_NAME))
}

/// The token in `path`, made first if the file does not exist. `Ok((token, created))`.
pub fn load_or_create(path: &Path) -> anyhow::Result<(Secret, bool)> {
    match read(path) {
        Ok(token) => Ok((token, false)),
        Err(ReadError::Missing) => create(path).map(|token| (token, true)),
        Err(ReadError::Other(e)) => Err(e),
    }
}

enum ReadError {
    Missing,
    Other(anyhow::Error),
}

fn read(path: &Path) -> Result<Secret, ReadError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => {
            return Err(ReadError::Other(anyhow::anyhow!(
                "cannot read the admin token file {}: {e}",
                path.display()
            )))
        }
    };
    let fail = |message: String| ReadError::Other(anyhow::anyhow!(message));
    let mode = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "the admin token file {} may be read by others (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.chars().count() < egress_config::admin::MIN_TOKEN_LEN {
        return Err(fail(format!(
            "the admin token in {} is shorter than {} characters; delete the file to get a new one",
            path.display(),
            egress_config::admin::MIN_TOKEN_LEN
        )));
    }
    Ok(Secret::new(token))
}

/// A new file with a random token, made so that no other user can read it at any moment
/// (created 0600, never replacing something already there, not even a symlink).
fn create(path: &Path) -> anyhow::Result<Secret> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let token = random_hex(32)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            anyhow::anyhow!("cannot create the admin token file {}: {e}", path.display())
        })?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(Secret::new(token))
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(|e| anyhow::anyhow!("cannot read /dev/urandom: {e}"))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let (token, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(token.expose().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_create(&path).unwrap();
        assert_eq!((again.expose(), created), (token.expose(), false));
        // Two files get two tokens.
        let (other, _) = load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(other.expose(), token.expose());
    }

    #[test]
    fn a_file_others_may_read_or_too_short_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::write(&open, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&open).err().unwrap().to_string();
        assert!(e.contains("chmod 600") && !e.contains("0123456789"), "{e}");
        let short = dir.path().join("short");
        std::fs::write(&short, "short\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_or_create(&short).err().unwrap().to_string();
        assert!(
            e.contains("shorter than 16") && !e.contains("short\n"),
            "{e}"
        );
    }

    #[test]
    fn a_symlink_in_its_place_is_not_followed_to_create_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("admin.token");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(load_or_create(&link).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn the_default_place_is_next_to_the_policy_file() {
        let at = location(None, Some(Path::new("/etc/egress/policy.yaml"))).unwrap();
        assert_eq!(at, Path::new("/etc/egress/admin.token"));
        let at = location(Some(Path::new("/x/t")), Some(Path::new("/etc/p.yaml"))).unwrap();
        assert_eq!(at, Path::new("/x/t"));
        let at = location(None, Some(Path::new("policy.yaml"))).unwrap();
        assert_eq!(at, Path::new("./admin.token"));
    }
}
