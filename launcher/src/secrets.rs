//! The credential files and directories a sandboxed command must not read: a default list under
//! the home directories, files other variables point at (`KUBECONFIG`, `DOCKER_CONFIG`, …),
//! system secrets the caller can read (root's `/etc/shadow`, host keys), and `.env` files in the
//! working tree (`env_files`). Only paths that exist are returned: a mask over a missing path
//! would create it on the host ("phantom dotfiles").

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::env_files;

/// Under each home directory (`$HOME` and the password database's): credentials and tokens of
/// common tools. Directories are masked whole.
pub const HOME_SECRETS: &[&str] = &[
    // Keys, generic credential stores.
    ".ssh",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".password-store",
    ".local/share/keyrings",
    ".env",
    // Forges.
    ".config/gh/hosts.yml",
    ".config/hub",
    ".config/glab-cli",
    // Package registries and container registries.
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".config/pypoetry/auth.toml",
    ".cargo/credentials.toml",
    ".cargo/credentials",
    ".gem/credentials",
    ".config/composer/auth.json",
    ".composer/auth.json",
    ".m2/settings-security.xml",
    ".docker/config.json",
    ".dockercfg",
    ".config/containers/auth.json",
    // Secret stores and databases.
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".mylogin.cnf",
    ".s3cfg",
    ".boto",
    ".config/rclone/rclone.conf",
    ".databrickscfg",
    // Clouds and their command-line tools.
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".oci",
    ".config/doctl",
    ".bluemix",
    ".config/linode-cli",
    ".config/hcloud",
    ".config/scw",
    ".config/openstack/clouds.yaml",
    ".aliyun",
    ".terraform.d/credentials.tfrc.json",
    ".terraformrc",
    // Browsers' and mail clients' cookies and saved passwords.
    ".mozilla/firefox",
    ".thunderbird",
    ".config/google-chrome",
    ".config/chromium",
];

/// Variables naming a credential file or directory elsewhere; `files` lists, for a directory,
/// what in it holds the credentials (empty: the path itself is masked).
const POINTED: &[(&str, &[&str])] = &[
    ("KUBECONFIG", &[]),
    ("GOOGLE_APPLICATION_CREDENTIALS", &[]),
    ("CLOUDSDK_CONFIG", &[]),
    ("AWS_SHARED_CREDENTIALS_FILE", &[]),
    ("AWS_CONFIG_FILE", &[]),
    ("AZURE_CONFIG_DIR", &[]),
    ("OCI_CLI_CONFIG_FILE", &[]),
    ("DOCKER_CONFIG", &["config.json"]),
    ("REGISTRY_AUTH_FILE", &[]),
    ("XDG_RUNTIME_DIR", &["containers/auth.json"]),
    ("CARGO_HOME", &["credentials.toml", "credentials"]),
    ("GH_CONFIG_DIR", &["hosts.yml"]),
    ("GNUPGHOME", &[]),
    ("PASSWORD_STORE_DIR", &[]),
    ("PGPASSFILE", &[]),
    ("NETRC", &[]),
    ("NPM_CONFIG_USERCONFIG", &[]),
    ("npm_config_userconfig", &[]),
    ("TF_CLI_CONFIG_FILE", &[]),
    ("RCLONE_CONFIG", &[]),
    ("BOTO_CONFIG", &[]),
    ("VAULT_CONFIG_PATH", &[]),
    // Kerberos: `FILE:/path` splits into `FILE` (no such file) and the path.
    ("KRB5CCNAME", &[]),
    ("KRB5_KTNAME", &[]),
];

/// Readable only by root (or a few groups) on most systems: masked when the caller can read
/// them, which in practice means when egress-run runs as root. `/proc/keys` lists the keys of
/// the caller's keyrings by name (the keyring calls themselves are refused, see `seccomp`).
const SYSTEM_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/ssl/private",
    "/etc/krb5.keytab",
    "/etc/ipsec.secrets",
    "/etc/wireguard",
    "/etc/NetworkManager/system-connections",
    "/etc/letsencrypt",
    "/etc/kubernetes",
    "/etc/rancher",
    "/var/run/secrets",
    "/proc/keys",
];

/// Where to look, as the caller's situation says.
#[derive(Debug)]
pub struct Scope<'a> {
    pub homes: &'a [PathBuf],
    pub cwd: &'a Path,
    /// The caller's environment (for `POINTED` and `XDG_CONFIG_HOME`).
    pub env: &'a [(OsString, OsString)],
    /// Searched for `.env` files: the working directory and the `--allow-write` paths.
    pub trees: &'a [PathBuf],
}

/// What was found, and what the caller must be told.
#[derive(Debug, Default)]
pub struct Found {
    pub paths: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Every secret of `scope` that exists now, in a stable order, without duplicates.
pub fn discover(scope: &Scope<'_>) -> Found {
    let mut found = Found::default();
    let var = |name: &str| {
        scope
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
            .filter(|v| !v.is_empty())
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    for home in scope.homes {
        candidates.extend(HOME_SECRETS.iter().map(|p| home.join(p)));
    }
    // Tools that follow the XDG rules look for their `.config/…` files there instead.
    if let Some(config) = var("XDG_CONFIG_HOME").map(|v| scope.cwd.join(v)) {
        let under_config = HOME_SECRETS
            .iter()
            .filter_map(|p| p.strip_prefix(".config/"));
        candidates.extend(under_config.map(|p| config.join(p)));
    }
    for (name, files) in POINTED {
        let Some(value) = var(name) else { continue };
        // KUBECONFIG is a list, like PATH; the others hold one path, with no colon to split. A
        // relative path is taken from the working directory, as the tool reading it would.
        for path in std::env::split_paths(value).map(|p| scope.cwd.join(p)) {
            if files.is_empty() {
                candidates.push(path);
            } else {
                candidates.extend(files.iter().map(|f| path.join(f)));
            }
        }
    }
    candidates.retain(|p| p.exists());
    candidates.extend(host_keys());
    candidates.extend(
        SYSTEM_SECRETS
            .iter()
            .map(PathBuf::from)
            .filter(|p| readable(p)),
    );
    let env_files = env_files::find(scope.cwd, scope.trees, &env_files::BOUNDS);
    candidates.extend(env_files.paths);
    found.warnings.extend(env_files.warning);
    for path in candidates {
        if found.paths.contains(&path) || hidden_anyway(&path, scope) {
            continue;
        }
        // An empty tmpfs over `/` or over a directory holding the working directory (or another
        // tree) would hide the work itself (a `GNUPGHOME=$HOME`, say): said, not done.
        let holds = std::iter::once(scope.cwd)
            .chain(scope.trees.iter().map(PathBuf::as_path))
            .find(|tree| tree.starts_with(&path));
        if let Some(tree) = holds.filter(|_| path.is_dir()) {
            found.warnings.push(format!(
                "egress-run: {} is not masked: it holds {}",
                path.display(),
                if tree == scope.cwd {
                    "the working directory".to_string()
                } else {
                    tree.display().to_string()
                }
            ));
            continue;
        }
        found.paths.push(path);
    }
    found
}

/// Under the sandbox's own, empty `/tmp` or `/run` (`$XDG_RUNTIME_DIR/containers/auth.json`,
/// `/var/run/secrets` through its link to `/run`), and not in a tree bound there: invisible
/// inside without a mask, and a mask would cost bwrap a mount for nothing.
fn hidden_anyway(path: &Path, scope: &Scope<'_>) -> bool {
    // Seatbelt (macOS) shows the host's /tmp.
    if cfg!(not(target_os = "linux")) {
        return false;
    }
    let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let replaced = ["/tmp", "/run"].iter().any(|d| real.starts_with(d));
    let bound = std::iter::once(scope.cwd)
        .chain(scope.trees.iter().map(PathBuf::as_path))
        .any(|tree| real.starts_with(tree));
    replaced && !bound
}

/// The ssh daemon's private host keys the caller can read.
fn host_keys() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/etc/ssh") else {
        return Vec::new();
    };
    let mut keys: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("ssh_host_") && name.ends_with("_key")
        })
        .map(|e| e.path())
        .filter(|p| readable(p))
        .collect();
    keys.sort();
    keys
}

/// Whether the caller (and so the command, which runs as the same user with no capability) can
/// read `path`, or, for a directory, reach into it.
fn readable(path: &Path) -> bool {
    use rustix::fs::{access, Access};
    if access(path, Access::READ_OK).is_ok() {
        return true;
    }
    path.is_dir() && access(path, Access::EXEC_OK).is_ok()
}

#[cfg(test)]
mod tests;
