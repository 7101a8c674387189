use std::ffi::OsStr;

use super::*;

fn name() -> Option<&'static OsStr> {
    Some(OsStr::new("policy.yaml"))
}

fn fingerprint() -> Fingerprint {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, "x").unwrap();
    super::super::file::fingerprint(&path).unwrap()
}

#[test]
fn idle_means_no_wake_up_at_all() {
    let settle = Settle::new(Instant::now());
    assert_eq!(settle.next(), None);
}

#[test]
fn each_change_restarts_the_settle_time() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Replaced, name(), t0);
    assert_eq!(settle.next(), Some((t0 + SETTLE, Step::Look)));
    let t1 = t0 + SETTLE / 2;
    settle.note(Change::Replaced, name(), t1);
    assert_eq!(settle.next(), Some((t1 + SETTLE, Step::Look)));
}

#[test]
#[cfg(target_os = "linux")]
fn a_file_being_written_in_place_is_not_looked_at_until_its_writer_closes_it() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Writing, name(), t0);
    assert!(settle.writing());
    // However long the writer pauses, only the warning is due.
    assert_eq!(settle.next(), Some((t0 + WRITER_WARNING, Step::WarnWriter)));
    settle.warned();
    assert_eq!(settle.next(), None);
    // A close of another name changes nothing for this one.
    settle.note(Change::Closed, Some(OsStr::new("other")), t0);
    assert_eq!(settle.next(), None);
    let t1 = t0 + Duration::from_secs(60);
    settle.note(Change::Closed, name(), t1);
    assert!(!settle.writing());
    assert_eq!(settle.next(), Some((t1 + SETTLE, Step::Look)));
}

#[test]
#[cfg(target_os = "linux")]
fn a_rename_over_the_name_or_lost_events_end_the_wait_for_a_writer() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Writing, name(), t0);
    settle.note(Change::Replaced, name(), t0);
    assert_eq!(settle.next(), Some((t0 + SETTLE, Step::Look)));

    settle.note(Change::Writing, name(), t0);
    settle.note(Change::Rescan, None, t0);
    assert_eq!(settle.next(), Some((t0 + SETTLE, Step::Look)));
}

#[test]
fn a_first_read_is_verified_after_the_settle_time_unless_a_change_comes_between() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Closed, name(), t0);
    let t1 = t0 + SETTLE;
    settle.first_read(fingerprint(), b"allow: []".to_vec(), t1);
    assert_eq!(settle.next(), Some((t1 + SETTLE, Step::Verify)));
    let t2 = t1 + SETTLE / 2;
    settle.note(Change::Closed, name(), t2);
    assert_eq!(
        settle.next(),
        Some((t2 + SETTLE, Step::Look)),
        "starts over"
    );
    assert!(settle.take_first().is_none());
}

#[test]
fn a_file_that_keeps_changing_while_read_is_given_up_after_bounded_tries() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Closed, name(), t0);
    for i in 1..TRIES {
        let t = t0 + SETTLE * i;
        assert!(settle.unstable(t), "try {i}");
        assert_eq!(settle.next(), Some((t + SETTLE, Step::Look)));
    }
    assert!(!settle.unstable(t0 + SETTLE * TRIES));
    assert_eq!(settle.next(), None, "waits for the next change");
    settle.note(Change::Closed, name(), t0);
    assert!(settle.unstable(t0), "the count starts again");
}

#[test]
fn concluding_waits_for_the_next_change() {
    let t0 = Instant::now();
    let mut settle = Settle::new(t0);
    settle.note(Change::Replaced, name(), t0);
    settle.concluded();
    assert_eq!(settle.next(), None);
}
