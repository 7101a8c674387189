use std::os::unix::fs::symlink;

use notify::event::{CreateKind, DataChange, Flag, MetadataKind, RemoveKind, RenameMode};

use super::*;

fn event(kind: EventKind, name: &str) -> Event {
    Event::new(kind).add_path(PathBuf::from("/etc/egress").join(name))
}

fn policy_names() -> HashSet<OsString> {
    ["policy.yaml", "..data"]
        .iter()
        .map(OsString::from)
        .collect()
}

#[test]
fn opens_reads_and_metadata_are_not_changes() {
    for kind in [
        EventKind::Access(AccessKind::Open(AccessMode::Any)),
        EventKind::Access(AccessKind::Open(AccessMode::Read)),
        EventKind::Access(AccessKind::Read),
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        EventKind::Access(AccessKind::Any),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
    ] {
        assert_eq!(classify(&event(kind, "policy.yaml")), None, "{kind:?}");
        assert!(notes_for(&event(kind, "policy.yaml"), &policy_names()).is_empty());
    }
}

#[test]
fn writes_closes_renames_creates_and_removals_are() {
    let cases = [
        (
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            Change::Writing,
        ),
        (EventKind::Modify(ModifyKind::Any), Change::Writing),
        (
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            Change::Closed,
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            Change::Replaced,
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            Change::Replaced,
        ),
        (EventKind::Create(CreateKind::File), Change::Replaced),
        (EventKind::Remove(RemoveKind::File), Change::Replaced),
        (EventKind::Other, Change::Replaced),
    ];
    for (kind, change) in cases {
        assert_eq!(
            classify(&event(kind, "policy.yaml")),
            Some(change),
            "{kind:?}"
        );
    }
}

#[test]
fn lost_events_are_a_rescan_whatever_the_name() {
    let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
    assert_eq!(
        notes_for(&overflow, &policy_names()),
        vec![Note {
            change: Change::Rescan,
            name: None
        }]
    );
}

#[test]
fn only_names_leading_to_the_file_count() {
    let names = policy_names();
    let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
    // The temporary file of an atomic replacement, an audit log beside the policy: not ours.
    assert!(notes_for(&event(close, ".policy.yaml.next"), &names).is_empty());
    assert!(notes_for(&event(close, "audit.log"), &names).is_empty());
    assert_eq!(
        notes_for(&event(close, "policy.yaml"), &names),
        vec![Note {
            change: Change::Closed,
            name: Some("policy.yaml".into())
        }]
    );
    // The kubelet's swap: `..data_tmp` is renamed to `..data`; the `To` side counts.
    let both = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
        .add_path(PathBuf::from("/etc/egress/..data_tmp"))
        .add_path(PathBuf::from("/etc/egress/..data"));
    assert_eq!(
        notes_for(&both, &names),
        vec![Note {
            change: Change::Replaced,
            name: Some("..data".into())
        }]
    );
}

#[test]
fn the_names_of_a_plain_file_are_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "allow: []\n").unwrap();
    assert_eq!(names(&path), HashSet::from([OsString::from("policy.yaml")]));
}

#[test]
fn a_configmap_layout_adds_the_data_link() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("..2024_01_01_00_00_00.1")).unwrap();
    std::fs::write(
        dir.path().join("..2024_01_01_00_00_00.1/policy.yaml"),
        "allow: []\n",
    )
    .unwrap();
    symlink("..2024_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
    symlink("..data/policy.yaml", dir.path().join("policy.yaml")).unwrap();
    assert_eq!(
        names(&dir.path().join("policy.yaml")),
        HashSet::from([OsString::from("policy.yaml"), OsString::from("..data")])
    );
}

#[test]
fn a_chain_of_links_in_the_directory_adds_each_hop_and_an_absolute_one_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.yaml"), "allow: []\n").unwrap();
    symlink(
        dir.path().join("real.yaml"),
        dir.path().join("current.yaml"),
    )
    .unwrap();
    symlink("current.yaml", dir.path().join("policy.yaml")).unwrap();
    assert_eq!(
        names(&dir.path().join("policy.yaml")),
        HashSet::from(["policy.yaml", "current.yaml", "real.yaml"].map(OsString::from))
    );
}

#[test]
fn a_link_loop_ends() {
    let dir = tempfile::tempdir().unwrap();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    symlink("a", dir.path().join("policy.yaml")).unwrap();
    assert_eq!(
        names(&dir.path().join("policy.yaml")),
        HashSet::from(["policy.yaml", "a", "b"].map(OsString::from))
    );
}

#[test]
fn a_bare_file_name_is_watched_in_the_current_directory() {
    assert_eq!(watched_dir(Path::new("policy.yaml")), PathBuf::from("."));
    assert_eq!(
        watched_dir(Path::new("/etc/egress/policy.yaml")),
        PathBuf::from("/etc/egress")
    );
}
