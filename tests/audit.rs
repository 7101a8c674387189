//! The audit log on a disk that fills up, proven with a real full filesystem: the proxy runs in
//! a private mount namespace (`unshare -m`) with a 64 KiB tmpfs holding its audit file, which the
//! test fills, truncates and frees through `/proc/PID/root`. What must hold: every line lost is
//! counted (`egress_audit_lines_dropped_total` = decisions − lines on disk), every line on disk
//! parses (no torn line, also after a logrotate `copytruncate`), and lines flow again as soon as
//! there is room.

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{message, raw_exchange, Proxy, WAIT};

/// A proxy whose audit log lives on a fresh 64 KiB tmpfs, mounted over `disk` in its own mount
/// namespace (gone with the process; the test's own view of `disk` is untouched).
fn proxy_on_small_disk(disk: &Path) -> Proxy {
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         admin: 127.0.0.1:0\n\
         audit: {{ path: \"{}/audit.jsonl\" }}\n\
         allow: [allowed.test]\n",
        disk.display()
    );
    Proxy::start_after_mount(
        &policy,
        "mount -t tmpfs -o size=64k egress-audit-test \"$0\"",
        disk.to_str().unwrap(),
    )
}

/// `name` on the proxy's small disk, as the test reaches it (through the proxy's mount namespace).
fn on_disk(proxy: &Proxy, disk: &Path, name: &str) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/root{}/{name}",
        proxy.pid(),
        disk.display()
    ))
}

/// Fills the disk with a file of zeros until it refuses more (ENOSPC).
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let block = [0u8; 4096];
    for _ in 0..1024 {
        match file.write(&block) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => return,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    panic!("a 64 KiB disk took 4 MiB");
}

/// `n` requests the policy denies, each on its own connection, for hosts `{tag}-{i}.test`.
fn denied(proxy: &Proxy, tag: &str, n: usize) {
    for i in 0..n {
        let host = format!("{tag}-{i}.test");
        let request = format!("GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let answer = raw_exchange(proxy.addr, request.as_bytes());
        assert!(answer.starts_with(b"HTTP/1.1 403"), "{host}: {answer:?}");
    }
}

/// Every line of the file, each of which must be a JSON object.
fn lines_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read the audit log");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the file ends inside a line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line ({e}): {l:?}")))
        .collect()
}

/// (decisions made, audit lines dropped), from the proxy's metrics.
fn counts(admin: SocketAddr) -> (u64, u64) {
    let text = raw_exchange(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8(text).unwrap();
    let value = |l: &str| -> u64 { l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64 };
    let decisions = text
        .lines()
        .filter(|l| l.starts_with("egress_decisions_total{"))
        .map(value)
        .sum();
    let dropped = text
        .lines()
        .find(|l| l.starts_with("egress_audit_lines_dropped_total "))
        .map(value)
        .expect("the dropped-lines counter");
    (decisions, dropped)
}

/// Waits until the proxy made `decisions` decisions and every one of them is either a line in
/// the file or counted as dropped (`removed` lines were taken away by the test). Returns the
/// lines and the dropped count.
fn settle(
    proxy: &Proxy,
    admin: SocketAddr,
    audit: &Path,
    decisions: u64,
    removed: u64,
) -> (Vec<Value>, u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (made, dropped) = counts(admin);
        let lines = lines_of(audit);
        if made == decisions && lines.len() as u64 + removed + dropped == decisions {
            return (lines, dropped);
        }
        assert!(
            Instant::now() < deadline,
            "{made} decisions (want {decisions}), {} lines on disk + {removed} removed + {dropped} \
             counted as dropped; log:\n{}",
            lines.len(),
            proxy.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hosts(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lines_a_full_disk_refuses_are_counted_and_never_torn_and_flow_again_with_room() {
    let disk = tempfile::tempdir().unwrap();
    let proxy = proxy_on_small_disk(disk.path());
    let admin = proxy.admin_addr();
    let audit = on_disk(&proxy, disk.path(), "audit.jsonl");

    denied(&proxy, "before", 10);
    let (lines, dropped) = settle(&proxy, admin, &audit, 10, 0);
    assert_eq!((lines.len(), dropped), (10, 0));

    fill(&on_disk(&proxy, disk.path(), "filler"));
    denied(&proxy, "full", 200);
    let (lines, dropped_when_full) = settle(&proxy, admin, &audit, 210, 0);
    assert!(
        dropped_when_full > 100,
        "the disk was full, yet only {dropped_when_full} lines were lost"
    );
    // What is on disk is whole lines, each a distinct decision, in order.
    let on_file = hosts(&lines);
    assert_eq!(
        on_file.iter().collect::<HashSet<_>>().len(),
        on_file.len(),
        "no line twice"
    );
    // The disk took part of a batch before refusing the rest: the partial line was removed.
    proxy.wait_for_log("a partial line to be cut back", |v| {
        message(v) == "a partial audit line was cut back off the file"
    });
    proxy.wait_for_log("the write failure to be reported", |v| {
        message(v).starts_with("cannot write the audit log")
    });

    // Room again: the next lines are written, and nothing more is lost.
    std::fs::remove_file(on_disk(&proxy, disk.path(), "filler")).unwrap();
    denied(&proxy, "after", 50);
    let (lines, dropped) = settle(&proxy, admin, &audit, 260, 0);
    assert_eq!(
        dropped, dropped_when_full,
        "lines lost after space returned"
    );
    let after: Vec<String> = (0..50).map(|i| format!("after-{i}.test")).collect();
    assert_eq!(hosts(&lines)[lines.len() - 50..], after[..]);
    proxy.wait_for_log("the recovery to be reported", |v| {
        message(v) == "the audit log is written again"
    });
}

#[test]
fn a_file_truncated_while_the_disk_is_full_starts_with_a_whole_line() {
    let disk = tempfile::tempdir().unwrap();
    let proxy = proxy_on_small_disk(disk.path());
    let admin = proxy.admin_addr();
    let audit = on_disk(&proxy, disk.path(), "audit.jsonl");

    denied(&proxy, "before", 10);
    settle(&proxy, admin, &audit, 10, 0);
    fill(&on_disk(&proxy, disk.path(), "filler"));
    denied(&proxy, "full", 100);
    let (kept, dropped) = settle(&proxy, admin, &audit, 110, 0);
    assert!(dropped > 0, "the disk was full");

    // logrotate's copytruncate: copy the file away, then empty it in place (the proxy keeps
    // its descriptor); the space it held is free again.
    let copy = lines_of(&audit);
    assert_eq!(copy.len(), kept.len());
    std::fs::File::options()
        .write(true)
        .open(&audit)
        .unwrap()
        .set_len(0)
        .unwrap();
    denied(&proxy, "rotated", 10);
    let (lines, _) = settle(&proxy, admin, &audit, 120, copy.len() as u64);
    let want: Vec<String> = (0..10).map(|i| format!("rotated-{i}.test")).collect();
    assert_eq!(
        hosts(&lines),
        want,
        "the emptied file holds exactly the new lines"
    );
}

#[test]
fn copytruncate_under_heavy_traffic_never_leaves_a_torn_line() {
    // Bursts large enough that a batch is tens of kilobytes: a writer that split it into
    // several writes could be truncated between two of them and start the file mid-line.
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let proxy = Proxy::start(&format!(
        "audit: {{ path: \"{}\" }}\nallow: [allowed.test]\n",
        audit.display()
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let addr = proxy.addr;
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 3000 {
                    let host = format!("c{c}-{sent}.test");
                    let request = format!("GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n");
                    raw_exchange(addr, request.as_bytes());
                    sent += 1;
                }
            })
        })
        .collect();
    let complete_lines = |text: &str| -> usize {
        // A read may overlap a write in progress: only lines with their newline are judged.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for line in whole.lines() {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("a torn line ({e}): {line:?}"));
        }
        whole.lines().count()
    };
    // The proxy opens (creates) its audit log just after it starts listening.
    support::wait::until("the audit log exists", || audit.exists());
    // Rotate as often as possible for a while: read (every whole line must parse), then empty
    // the file in place, as logrotate's copytruncate does.
    // Bounded by time and count; it ends early once enough rotations had lines to judge (on an
    // idle machine 100,000 rotations take well under a second, a few of the writer's batches).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rotations = 0;
    let mut judged = 0; // rotations that found lines to judge
    while judged < 40 && rotations < 10_000_000 && Instant::now() < deadline {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if complete_lines(&text) > 0 {
            judged += 1;
        }
        std::fs::File::options()
            .write(true)
            .open(&audit)
            .unwrap()
            .set_len(0)
            .unwrap();
        rotations += 1;
    }
    assert!(
        judged >= 10, // the writer writes a batch every 50 ms or so
        "only {judged} of {rotations} rotations found lines"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    support::wait::until("the last lines are written", || {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        complete_lines(&text);
        text.is_empty() || text.ends_with('\n')
    });
}
