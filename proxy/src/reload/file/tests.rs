use super::*;

fn version(ino: u64, size: u64, ctime: i64) -> Fingerprint {
    Fingerprint {
        dev: 1,
        ino,
        size,
        mtime: (ctime, 0),
        ctime: (ctime, 0),
    }
}

#[test]
fn a_rewrite_or_a_rename_gives_a_new_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "allow: [a.example]\n").unwrap();
    let first = fingerprint(&path).unwrap();
    assert_eq!(fingerprint(&path).unwrap(), first, "a stat changes nothing");

    std::fs::write(&path, "allow: [a.example, b.example]\n").unwrap();
    let rewritten = fingerprint(&path).unwrap();
    assert_ne!(rewritten, first, "another size");

    let next = dir.path().join(".next");
    std::fs::write(&next, "allow: [a.example, b.example]\n").unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert_ne!(fingerprint(&path).unwrap(), rewritten, "another inode");
}

#[test]
fn a_symlinked_file_is_fingerprinted_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, "allow: [a.example]\n").unwrap();
    let link = dir.path().join("policy.yaml");
    std::os::unix::fs::symlink("real.yaml", &link).unwrap();
    assert_eq!(fingerprint(&link).unwrap(), fingerprint(&real).unwrap());
}

#[test]
fn a_read_returns_the_whole_file_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "allow: [a.example]\n").unwrap();
    let Read::Whole {
        fingerprint: f,
        text,
    } = read_whole(&path).unwrap()
    else {
        panic!("nothing changed the file")
    };
    assert_eq!(text, b"allow: [a.example]\n");
    assert_eq!(f, fingerprint(&path).unwrap());
}

#[test]
fn a_read_that_overlapped_a_write_or_a_replacement_is_not_whole() {
    let v = version(7, 20, 100);
    assert!(unchanged(v, v, v, 20));
    // Appended to while read: the open file's version moved.
    assert!(!unchanged(v, version(7, 40, 101), version(7, 40, 101), 40));
    // Truncated and rewritten to the same size while read.
    assert!(!unchanged(v, version(7, 20, 101), version(7, 20, 101), 20));
    // Fewer bytes than the size says: cut short.
    assert!(!unchanged(v, v, v, 12));
    // Renamed over while read: the name leads elsewhere now.
    assert!(!unchanged(v, v, version(8, 20, 101), 20));
}

#[test]
fn a_missing_file_is_an_error_not_an_empty_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    assert!(fingerprint(&path).is_err());
    assert!(read_whole(&path).is_err());
}
