//! deploy/, each piece checked with the tool its platform uses: the systemd unit with
//! `systemd-analyze verify` and `security --offline=yes`, and the proxy's side of it (readiness
//! and watchdog over a real `$NOTIFY_SOCKET`); the Kubernetes base with `kubernetes-validate`;
//! the Containerfile with `hadolint`, and the image it builds with buildah (see `image`); every YAML file with `yamllint`; every policy shipped
//! there with the proxy's own loader.

mod support;

#[path = "deploy/image.rs"]
mod image;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_yaml_ng::Value;
use support::{proxy_binary, Proxy};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program:?}: {e} (tests/run.sh installs it)"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A PyPI tool that tests/run.sh installs into target/deploy-tools (or one on PATH).
fn pypi_tool(name: &str) -> PathBuf {
    let venv = repo().join("target/deploy-tools/bin").join(name);
    if venv.exists() {
        return venv;
    }
    PathBuf::from(name)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// `egress-proxy check FILE` accepts it.
fn assert_policy_loads(path: &Path) {
    let out = run(proxy_binary(), &["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{path:?}: {}", text(&out));
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened_to_an_exposure_of_at_most_2() {
    let unit = std::fs::read_to_string(deploy("systemd/egress-proxy.service")).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    // Verified as installed, with this build's binary where the unit expects its own.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("egress-proxy.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/egress-proxy", proxy_binary()),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let verify = run("systemd-analyze", &["verify", file]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        text(&verify)
    );
    let security = run("systemd-analyze", &["security", "--offline=yes", file]);
    let report = text(&security);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for egress-proxy.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(score <= 2.0, "exposure {score}:\n{report}");
}

/// Receives the next datagram systemd would get, within `wait`.
fn next_state(socket: &UnixDatagram, wait: Duration) -> String {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn under_systemd_the_proxy_says_ready_once_serving_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    let proxy = Proxy::start_with_env(
        "listen: 127.0.0.1:0\nallow: [example.org]\n",
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = next_state(&systemd, support::WAIT);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    // Ready means serving: the listener takes clients now.
    std::net::TcpStream::connect(proxy.addr).expect("listening when ready");
    // Pings at half the interval (0.2 s): two within a generous bound.
    for _ in 0..2 {
        assert_eq!(next_state(&systemd, Duration::from_secs(5)), "WATCHDOG=1");
    }
    proxy.signal("TERM");
    let mut seen = next_state(&systemd, support::WAIT);
    while seen == "WATCHDOG=1" {
        seen = next_state(&systemd, support::WAIT);
    }
    assert_eq!(seen, "STOPPING=1");
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    // WATCHDOG_PID names the wrapper systemd started, not this process: only readiness is sent.
    let _proxy = Proxy::start_with_env(
        "listen: 127.0.0.1:0\n",
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "100000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    assert!(next_state(&systemd, support::WAIT).starts_with("READY=1"));
    // Ten intervals without a ping (a ping would come every 50 ms).
    systemd
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    let got = systemd.recv(&mut buf);
    assert!(
        got.is_err(),
        "unexpected {:?}",
        got.map(|n| buf[..n].to_vec())
    );
}

#[test]
fn health_exits_0_for_a_live_proxy_and_1_otherwise() {
    let proxy = Proxy::start("admin: 127.0.0.1:0\n");
    let admin = proxy.admin_addr().to_string();
    let live = run(proxy_binary(), &["health", &admin]);
    assert!(live.status.success(), "{}", text(&live));
    // The proxy port is not the admin listener: not a 200 for /livez.
    let wrong = run(proxy_binary(), &["health", &proxy.addr.to_string()]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let down = run(proxy_binary(), &["health", &dead_addr]);
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down).contains("not live at"), "{}", text(&down));
}

#[test]
fn every_yaml_file_under_deploy_passes_yamllint() {
    let out = run(
        "yamllint",
        &[
            "--strict",
            "-c",
            deploy(".yamllint").to_str().unwrap(),
            deploy("").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_kubernetes_base_validates_and_is_locked_down() {
    let base = deploy("kubernetes");
    let kustomization = yaml(&base.join("kustomization.yaml"));
    let resources: Vec<PathBuf> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| base.join(r.as_str().unwrap()))
        .collect();
    assert_eq!(resources.len(), 4);
    let mut args = vec!["--strict"];
    args.extend(resources.iter().map(|p| p.to_str().unwrap()));
    let out = run(pypi_tool("kubernetes-validate"), &args);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    // Every document passed: the Deployment, Service, PDB and both NetworkPolicies.
    assert_eq!(
        report.matches(" passed for resource ").count(),
        5,
        "{report}"
    );
    // The ServiceMonitor is a CRD the tool has no schema for: it must still parse as one.
    let monitor = yaml(&base.join("monitoring/servicemonitor.yaml"));
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let component = yaml(&base.join("monitoring/kustomization.yaml"));
    assert_eq!(component["kind"], "Component");

    let deployment = yaml(&base.join("deployment.yaml"));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    // The policy as a directory (a subPath mount would never see an update).
    let mount = &container["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/etc/egress");
    assert!(mount.get("subPath").is_none());
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "egress-policy");
    let generated = &kustomization["configMapGenerator"][0];
    assert_eq!(generated["name"], "egress-policy");
    assert_policy_loads(&base.join(generated["files"][0].as_str().unwrap()));
}

#[test]
fn the_containerfile_passes_hadolint_and_describes_a_non_root_scratch_image() {
    let file = deploy("container/Containerfile");
    let out = run(pypi_tool("hadolint"), &[file.to_str().unwrap()]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let last_from = text.lines().rfind(|l| l.starts_with("FROM ")).unwrap();
    assert_eq!(last_from, "FROM scratch");
    assert!(text.contains("\nUSER 65532:65532\n"));
    assert!(text.contains("--no-default-features"), "static: no GSSAPI");
    assert!(text.contains("+crt-static"));
    assert!(text.contains("HEALTHCHECK"));
    assert_policy_loads(&deploy("container/policy.yaml"));
    // The build context leaves the build output out.
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignored.lines().any(|l| l == "target"));
}

#[test]
fn the_compose_setup_names_files_that_exist_and_scrapes_the_admin_listener() {
    let dir = deploy("compose");
    let compose = yaml(&dir.join("compose.yaml"));
    let services = compose["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, ["egress", "prometheus", "grafana"]);
    let build = &compose["services"]["egress"]["build"];
    let context = dir.join(build["context"].as_str().unwrap());
    assert!(context.join(build["dockerfile"].as_str().unwrap()).exists());
    // Every file or directory mounted exists.
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                dir.join(source).exists(),
                "{name:?} mounts missing {source}"
            );
        }
    }
    assert_policy_loads(&dir.join("policy/policy.yaml"));
    let prometheus = yaml(&dir.join("prometheus.yml"));
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["job_name"], "egress", "the rules select job=\"egress\"");
    assert_eq!(job["static_configs"][0]["targets"][0], "egress:9090");
    let policy = yaml(&dir.join("policy/policy.yaml"));
    assert_eq!(policy["admin"]["listen"], "0.0.0.0:9090");
    let datasources = yaml(&dir.join("grafana/datasources.yaml"));
    assert_eq!(
        datasources["datasources"][0]["url"],
        "http://prometheus:9090"
    );
}
