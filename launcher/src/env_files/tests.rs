use super::*;

/// Writes each path (relative to `root`) as a file, its folders made first.
fn files(root: &Path, paths: &[&str]) {
    for path in paths {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "SECRET=1\n").unwrap();
    }
}

fn relative(root: &Path, found: &Found) -> Vec<String> {
    found
        .paths
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn env_files_are_found_at_any_depth_and_templates_skipped() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("repo");
    files(
        &tree,
        &[
            ".env",
            ".env.local",
            ".envrc",
            "app/.env.production",
            "a/b/c/d/e/f/g/h/.env",
            ".envs/.production/.django",
            ".env.example",
            "app/.env.sample",
            "app/.env.template",
            "app/.env.dist",
            "app/environment.ts",
            "app/my.env",
        ],
    );
    let found = find(&tree, std::slice::from_ref(&tree), &BOUNDS);
    assert_eq!(
        relative(root.path(), &found),
        [
            "repo/.env",
            "repo/.env.local",
            "repo/.envrc",
            // A folder is masked whole, and not searched.
            "repo/.envs",
            "repo/a/b/c/d/e/f/g/h/.env",
            "repo/app/.env.production",
        ]
    );
    assert_eq!(found.warning, None);
}

#[test]
fn skipped_folders_caches_and_virtualenvs_are_not_searched() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().to_path_buf();
    files(
        &tree,
        &[
            ".git/.env",
            "node_modules/pkg/.env",
            "target/CACHEDIR.TAG",
            "target/debug/.env",
            "venv/pyvenv.cfg",
            "venv/lib/.env",
            // A virtualenv named .env: the project's Python, not a secret.
            ".env/pyvenv.cfg",
            ".env/bin/python",
            "src/.env",
        ],
    );
    let found = find(&tree, std::slice::from_ref(&tree), &BOUNDS);
    assert_eq!(relative(root.path(), &found), ["src/.env"]);
}

#[test]
fn links_are_masked_at_their_target_and_dangling_ones_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("repo");
    files(root.path(), &["elsewhere/real.env", "elsewhere/sub/.env"]);
    std::fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(root.path().join("elsewhere/real.env"), tree.join(".env")).unwrap();
    // A dangling link: a mask would create its target.
    std::os::unix::fs::symlink(root.path().join("missing"), tree.join(".env.local")).unwrap();
    // A link to a folder is not followed by the search.
    std::os::unix::fs::symlink(root.path().join("elsewhere"), tree.join("linked")).unwrap();
    let found = find(&tree, std::slice::from_ref(&tree), &BOUNDS);
    assert_eq!(relative(root.path(), &found), ["repo/.env"]);
}

#[test]
fn the_working_directorys_ancestors_are_looked_at_but_not_searched() {
    let root = tempfile::tempdir().unwrap();
    files(
        root.path(),
        &[
            "mono/.env",
            "mono/other-package/.env",
            "mono/packages/web/.env.local",
        ],
    );
    let cwd = root.path().join("mono/packages/web");
    let found = find(&cwd, std::slice::from_ref(&cwd), &BOUNDS);
    assert_eq!(
        relative(root.path(), &found),
        ["mono/.env", "mono/packages/web/.env.local"]
    );
}

#[test]
fn every_tree_is_searched_and_nothing_listed_twice() {
    let root = tempfile::tempdir().unwrap();
    files(root.path(), &["work/.env", "cache/x/.env.cache"]);
    let work = root.path().join("work");
    let trees = [work.clone(), root.path().join("cache"), work.clone()];
    let found = find(&work, &trees, &BOUNDS);
    assert_eq!(
        relative(root.path(), &found),
        ["cache/x/.env.cache", "work/.env"]
    );
}

#[test]
fn past_a_bound_the_search_stops_and_says_where() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("t");
    // Breadth first: the shallow .env is found before any bound is reached.
    files(&tree, &[".env", "a/b/c/d/.env", "a/x1", "a/x2", "a/x3"]);
    let depth = Bounds { depth: 2, ..BOUNDS };
    let found = find(&tree, std::slice::from_ref(&tree), &depth);
    assert_eq!(relative(root.path(), &found), ["t/.env"]);
    let warning = found.warning.unwrap();
    assert!(
        warning.starts_with(&format!(
            "egress-run: stopped looking for .env files 2 folders deep; {} and the folders after it",
            tree.join("a/b/c").display()
        )),
        "{warning}"
    );
    // Entries: the top has 2 (.env, a), a has 4: a budget of 3 stops inside a.
    let entries = Bounds {
        entries: 3,
        ..BOUNDS
    };
    let found = find(&tree, std::slice::from_ref(&tree), &entries);
    assert_eq!(relative(root.path(), &found), ["t/.env"]);
    let warning = found.warning.unwrap();
    assert!(
        warning.contains(&format!(
            "after 3 entries; {} and the folders",
            tree.join("a").display()
        )),
        "{warning}"
    );
    let time = Bounds {
        time: Duration::ZERO,
        ..BOUNDS
    };
    let found = find(&tree, std::slice::from_ref(&tree), &time);
    assert!(found.paths.is_empty());
    assert!(found.warning.unwrap().contains("after 0 ms"));
    // Exactly enough: no warning.
    let exact = Bounds {
        entries: 2 + 4 + 1 + 1 + 1,
        ..BOUNDS
    };
    let found = find(&tree, std::slice::from_ref(&tree), &exact);
    assert_eq!(found.warning, None, "{found:?}");
    assert_eq!(relative(root.path(), &found), ["t/.env", "t/a/b/c/d/.env"]);
}
