//! The container image, built for real with Debian's buildah from deploy/container/Containerfile
//! — its build stage replaced (`--build-context build=…`) by files laid out by the same
//! `rootfs.sh` from the static binary tests/run.sh builds, so no base image is pulled — then
//! inspected and run. No container runtime is installed here, so the image's file system is
//! mounted and its entrypoint run chrooted as the image's user, in a network namespace of the
//! test's own: what a runtime does, minus the runtime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::{deploy, repo, run, text};

/// The static binary tests/run.sh builds (`--no-default-features`, `+crt-static`).
fn static_binary() -> PathBuf {
    let path = repo().join("target/static/x86_64-unknown-linux-gnu/debug/egress-proxy");
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh builds it",
        path.display()
    );
    path
}

/// buildah with its storage under `dir` (vfs: works anywhere, leaves nothing elsewhere).
fn buildah(dir: &Path, args: &[&str]) -> String {
    let root = dir.join("root");
    let runroot = dir.join("run");
    let mut all = vec![
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
        "--storage-driver",
        "vfs",
    ];
    all.extend_from_slice(args);
    let out = run("buildah", &all);
    assert!(out.status.success(), "buildah {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The chrooted entrypoint, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_image_builds_without_pulling_and_runs_as_its_user_with_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("build");
    let layout = Command::new(deploy("container/rootfs.sh"))
        .arg(context.join("out"))
        .arg(static_binary())
        .output()
        .unwrap();
    assert!(layout.status.success(), "{}", text(&layout));
    let build_context = format!("build={}", context.display());
    let containerfile = deploy("container/Containerfile");
    buildah(
        dir.path(),
        &[
            "build",
            "--pull=never",
            "--format",
            "docker",
            "--build-context",
            &build_context,
            "-f",
            containerfile.to_str().unwrap(),
            "-t",
            "egress-proxy-test",
            repo().to_str().unwrap(),
        ],
    );

    // What a runtime would run: as 65532, the entrypoint on the image's policy, and the health
    // check the proxy answers itself.
    let inspected = buildah(
        dir.path(),
        &["inspect", "--type", "image", "egress-proxy-test"],
    );
    let inspected: Value = serde_json::from_str(&inspected).unwrap();
    let config = &inspected["Docker"]["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], json!(["/egress-proxy"]), "{config}");
    let cmd = json!([
        "--config",
        "/etc/egress/policy.yaml",
        "--log-format",
        "json"
    ]);
    assert_eq!(config["Cmd"], cmd, "{config}");
    let health = json!(["CMD", "/egress-proxy", "health", "127.0.0.1:9090"]);
    assert_eq!(config["Healthcheck"]["Test"], health, "{config}");
    // Nothing but what rootfs.sh laid out, on scratch (buildah commits both copies as one layer).
    let layers = &inspected["OCIv1"]["rootfs"]["diff_ids"];
    assert_eq!(layers.as_array().map(Vec::len), Some(1), "{inspected}");

    let container = buildah(dir.path(), &["from", "--pull=never", "egress-proxy-test"]);
    let mounted = buildah(dir.path(), &["mount", &container]);
    let mut entrypoint = vec!["/egress-proxy"];
    entrypoint.extend(cmd.as_array().unwrap().iter().map(|a| a.as_str().unwrap()));
    // A network namespace of its own: the image's policy listens on fixed ports (3128, 9090).
    // And a mount namespace where the image's /dev is the host's, as a runtime provides one
    // (the proxy reads /dev/urandom). unshare, sh and chroot each exec the next: the child is
    // the proxy itself.
    let as_user = ["chroot", "--userspec=65532:65532", mounted.as_str()];
    let setup =
        "ip link set lo up && mkdir -p \"$0/dev\" && mount --rbind /dev \"$0/dev\" && exec \"$@\"";
    let proxy = Running(
        Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", setup, mounted.as_str()])
            .args(as_user)
            .args(&entrypoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = proxy.0.id();
    let state = std::fs::metadata(format!("{mounted}/var/lib/egress")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (state.uid(), state.mode() & 0o777),
        (65532, 0o700),
        "the state directory"
    );
    let netns = format!("--net=/proc/{pid}/ns/net");
    let mountns = format!("--mount=/proc/{pid}/ns/mnt");
    let inside = |args: &[&str]| {
        let mut all = vec![netns.as_str(), mountns.as_str(), "--"];
        all.extend_from_slice(args);
        run("nsenter", &all)
    };
    // The image's own health check, run as a runtime runs it: inside, as the image's user.
    let mut health_check = as_user.to_vec();
    health_check.extend(["/egress-proxy", "health", "127.0.0.1:9090"]);
    crate::support::wait::until("the image's health check passes", || {
        inside(&health_check).status.success()
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.starts_with("Name:\tegress-proxy\n"), "{status}");
    assert!(
        status.contains("\nUid:\t65532\t65532\t65532\t65532\n"),
        "{status}"
    );
    assert!(status.contains("\nCapEff:\t0000000000000000\n"), "{status}");
    // The image's policy decides: a name it does not list is refused with its reason.
    let refused = inside(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-x",
        "http://127.0.0.1:3128",
        "http://denied.example/",
    ]);
    let head = text(&refused);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(head.contains("X-Egress-Error: not-allowlisted"), "{head}");
    drop(proxy);
    buildah(dir.path(), &["umount", &container]);
    buildah(dir.path(), &["rm", &container]);
}
