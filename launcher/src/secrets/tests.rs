use super::*;

fn scope_env(pairs: &[(&str, &Path)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), v.as_os_str().to_owned()))
        .collect()
}

/// `discover`'s paths below `root`, relative to it (system secrets are left out: they depend
/// on the machine and on who runs the tests).
/// Outside /tmp, which the sandbox replaces (see `what_the_sandbox_hides_anyway_needs_no_mask`).
fn visible_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/var/tmp").unwrap()
}

fn below(root: &Path, found: &Found) -> Vec<String> {
    found
        .paths
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn every_default_home_secret_that_exists_is_found_and_no_other() {
    let root = visible_dir();
    let home = root.path().join("home");
    let cwd = root.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    // Every other entry exists; the rest must not be listed (a mask would create them).
    for entry in HOME_SECRETS.iter().step_by(2) {
        let path = home.join(entry);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "secret").unwrap();
    }
    let homes = [home.clone()];
    let found = discover(&Scope {
        homes: &homes,
        cwd: &cwd,
        env: &[],
        trees: std::slice::from_ref(&cwd),
    });
    let expected: Vec<String> = HOME_SECRETS
        .iter()
        .step_by(2)
        .map(|e| format!("home/{e}"))
        .collect();
    assert_eq!(below(root.path(), &found), expected);
    assert_eq!(found.warnings, Vec::<String>::new());
}

#[test]
fn files_that_variables_point_at_are_found() {
    let root = visible_dir();
    let cwd = root.path().join("work");
    let made = |rel: &str| {
        let path = root.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "secret").unwrap();
        path
    };
    let kube_a = made("kube/a.yaml");
    let kube_b = made("kube/b.yaml");
    made("docker/config.json");
    made("cargo/credentials.toml");
    made("xdg/gh/hosts.yml");
    made("runtime/containers/auth.json");
    made("work/relative-creds.json");
    let kubeconfig =
        std::env::join_paths([&kube_a, &root.path().join("missing"), &kube_b]).unwrap();
    let env = scope_env(&[
        ("KUBECONFIG", Path::new(&kubeconfig)),
        ("DOCKER_CONFIG", &root.path().join("docker")),
        ("CARGO_HOME", &root.path().join("cargo")),
        ("XDG_CONFIG_HOME", &root.path().join("xdg")),
        ("XDG_RUNTIME_DIR", &root.path().join("runtime")),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            Path::new("relative-creds.json"),
        ),
        ("AWS_CONFIG_FILE", Path::new("")),
    ]);
    let found = discover(&Scope {
        homes: &[],
        cwd: &cwd,
        env: &env,
        trees: std::slice::from_ref(&cwd),
    });
    assert_eq!(
        below(root.path(), &found),
        [
            "xdg/gh/hosts.yml",
            "kube/a.yaml",
            "kube/b.yaml",
            "work/relative-creds.json",
            "docker/config.json",
            "runtime/containers/auth.json",
            "cargo/credentials.toml",
        ]
    );
}

#[test]
fn env_files_of_every_tree_are_found_once() {
    let root = visible_dir();
    let cwd = root.path().join("work");
    let cache = root.path().join("cache");
    std::fs::create_dir_all(cwd.join("sub")).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cwd.join("sub/.env"), "A=1").unwrap();
    std::fs::write(cache.join(".env"), "B=1").unwrap();
    // `~/.env` is a home secret too, and the working directory is the home: listed once.
    std::fs::write(cwd.join(".env"), "C=1").unwrap();
    let homes = [cwd.clone()];
    let found = discover(&Scope {
        homes: &homes,
        cwd: &cwd,
        env: &[],
        trees: &[cwd.clone(), cache.clone()],
    });
    assert_eq!(
        below(root.path(), &found),
        ["work/.env", "cache/.env", "work/sub/.env"]
    );
}

#[test]
fn a_folder_holding_the_working_directory_is_not_masked_but_named() {
    let root = visible_dir();
    let cwd = root.path().join("gnupg/work");
    std::fs::create_dir_all(&cwd).unwrap();
    let env = scope_env(&[("GNUPGHOME", &root.path().join("gnupg"))]);
    let found = discover(&Scope {
        homes: &[],
        cwd: &cwd,
        env: &env,
        trees: std::slice::from_ref(&cwd),
    });
    assert_eq!(below(root.path(), &found), Vec::<String>::new());
    assert_eq!(
        found.warnings,
        [format!(
            "egress-run: {} is not masked: it holds the working directory",
            root.path().join("gnupg").display()
        )]
    );
    // The same for an --allow-write tree.
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let tree = root.path().join("gnupg/cache");
    let found = discover(&Scope {
        homes: &[],
        cwd: &elsewhere,
        env: &env,
        trees: &[elsewhere.clone(), tree.clone()],
    });
    assert_eq!(below(root.path(), &found), Vec::<String>::new());
    assert_eq!(
        found.warnings,
        [format!(
            "egress-run: {} is not masked: it holds {}",
            root.path().join("gnupg").display(),
            tree.display()
        )]
    );
}

#[test]
fn what_the_sandbox_hides_anyway_needs_no_mask() {
    // The sandbox's /tmp is its own: a secret there is invisible unless a tree is bound there.
    let root = tempfile::tempdir_in("/tmp").unwrap();
    let cwd = visible_dir();
    std::fs::create_dir_all(root.path().join("containers")).unwrap();
    std::fs::write(root.path().join("containers/auth.json"), "{}").unwrap();
    let env = scope_env(&[("XDG_RUNTIME_DIR", root.path())]);
    let scope = |trees: &[PathBuf]| {
        discover(&Scope {
            homes: &[],
            cwd: cwd.path(),
            env: &env,
            trees,
        })
    };
    // Seatbelt (macOS) shows the host's /tmp: there it is denied like any other.
    let unbound: &[&str] = match cfg!(target_os = "linux") {
        true => &[],
        false => &["containers/auth.json"],
    };
    assert_eq!(below(root.path(), &scope(&[])), unbound);
    assert_eq!(
        below(root.path(), &scope(&[root.path().to_path_buf()])),
        ["containers/auth.json"],
        "bound into the sandbox with --allow-write: masked"
    );
}

#[test]
fn system_secrets_are_listed_only_when_the_caller_can_read_them() {
    let found = discover(&Scope {
        homes: &[],
        cwd: Path::new("/nonexistent"),
        env: &[],
        trees: &[],
    });
    let keys = host_keys();
    let system = SYSTEM_SECRETS
        .iter()
        .map(Path::new)
        .chain(keys.iter().map(PathBuf::as_path));
    for path in system {
        let listed = found.paths.iter().any(|p| p == path);
        let readable = std::fs::File::open(path).is_ok() || std::fs::read_dir(path).is_ok();
        let hidden = path.canonicalize().is_ok_and(|p| p.starts_with("/run"));
        assert_eq!(listed, readable && !hidden, "{}", path.display());
    }
    assert!(
        found.paths.iter().any(|p| p == Path::new("/proc/keys")),
        "the keys' names are hidden for everyone"
    );
}
