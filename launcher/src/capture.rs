//! Capture inside the sandbox: programs that ignore the proxy variables (Node's `fetch`, Go with
//! its own transport, Java, `ssh`, static binaries) still reach egress, and only egress.
//!
//! Before bubblewrap starts, `egress-run __capture` (a step of egress-run's own, between the outer
//! half and bubblewrap) makes a user and network namespace of its own, owned by the caller's uid
//! (no root: the namespace is its own), and sets up its network with `ip` and `nft` holding
//! `CAP_NET_ADMIN` in that namespace only:
//!
//! - loopback up, and a default route over loopback (source 127.0.0.1), so a connection to any
//!   address leaves `connect()` instead of failing with "network unreachable";
//! - nftables `REDIRECT`: every TCP connection to a non-loopback address to the inner half's
//!   127.0.0.1:3129 / [::1]:3129 (conntrack keeps the original destination,
//!   `SO_ORIGINAL_DST`), DNS (port 53, anywhere) to the stub on port 5353, and everything
//!   else to a non-loopback address (UDP, QUIC) rejected.
//!
//! It then drops every capability and becomes bubblewrap, which runs without `--unshare-net`:
//! the sandbox's own user namespace is a child of this one and shares its network, and nothing
//! in a child user namespace holds any capability over a network namespace its parent owns, so
//! the command cannot change the rules. The namespaces vanish with their last process: nothing
//! is left on the host, whatever ends egress-run (even `kill -9`).
//!
//! When any of it fails (user namespaces restricted, nftables missing in the kernel, no `nft`
//! binary), the step says so once on stderr and becomes bubblewrap with `--unshare-net` as
//! before: the proxy variables only. With `--require-capture` it exits instead.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};

pub mod dns;
pub mod names;

/// The inner half's listener for captured connections (both 127.0.0.1 and ::1).
pub const CAPTURE_PORT: u16 = 3129;
/// The DNS stub's port inside the sandbox (UDP; port 53 is redirected there, so nothing needs
/// to bind below 1024).
pub const DNS_PORT: u16 = 5353;

/// The exit status of `__capture` when capture is required and could not be set up.
pub const REFUSED: u8 = 124;

/// What `/etc/resolv.conf` says inside the sandbox when connections are captured.
pub const RESOLV_CONF: &str = "# egress-run: names are answered by egress-run's stub (allowed names only)\nnameserver 127.0.0.1\n";

/// The routes, for `ip -batch -`.
fn routes(ipv6: bool) -> String {
    let mut script = String::from("link set lo up\nroute add default dev lo src 127.0.0.1\n");
    if ipv6 {
        script.push_str("route add ::/0 dev lo\n");
    }
    script
}

/// The nftables ruleset, for `nft -f -`. The filter chain runs after the NAT chain, so it sees
/// redirected packets with their new (loopback) destination.
fn ruleset() -> String {
    format!(
        "table inet egress_run {{
\tchain capture {{
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta l4proto {{ tcp, udp }} th dport 53 redirect to :{DNS_PORT}
\t\tip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :{CAPTURE_PORT}
\t\tip6 daddr != ::1 meta l4proto tcp redirect to :{CAPTURE_PORT}
\t}}
\tchain only_loopback {{
\t\ttype filter hook output priority 0; policy accept;
\t\tip daddr != 127.0.0.0/8 reject
\t\tip6 daddr != ::1 reject
\t}}
}}
"
    )
}

/// `egress-run __capture [--require] -- BWRAP ARGS…`: sets up the namespaces, then becomes
/// bubblewrap (with `--unshare-net` added when capture could not be set up).
pub fn run(require: bool, bwrap: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let (program, args) = bwrap.split_first().context("no bubblewrap command given")?;
    let mut args = args.to_vec();
    if let Err(error) = set_up() {
        if require {
            eprintln!(
                "egress-run: --require-capture: connections cannot be captured in the sandbox: {error:#}"
            );
            return Ok(ExitCode::from(REFUSED));
        }
        eprintln!(
            "egress-run: connections cannot be captured in the sandbox ({error:#}); \
             only programs that honour the proxy variables can connect (--no-capture says \
             this is meant, --require-capture refuses to start)"
        );
        args.insert(0, "--unshare-net".into());
    }
    let error = std::os::unix::process::CommandExt::exec(Command::new(program).args(args));
    bail!("cannot start {}: {error}", Path::new(program).display())
}

/// The user and network namespaces, their network, and every capability dropped again.
fn set_up() -> anyhow::Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    crate::inherited::unshare_user_and_network()
        .context("cannot create a user and network namespace")?;
    map_ids(uid, gid).context("cannot map the user into its namespace")?;
    let ip = find_tool("ip", "iproute2", "EGRESS_RUN_IP")?;
    let nft = find_tool("nft", "nftables", "EGRESS_RUN_NFT")?;
    with_net_admin(|| {
        let ipv6 = Path::new("/proc/sys/net/ipv6").exists();
        // Both at once (neither needs the other's work): start-up waits for the slower only.
        let routes = start(&ip, &["-batch", "-"], &routes(ipv6))?;
        let rules = start(&nft, &["-f", "-"], &ruleset())?;
        let routed = finish(routes, &ip).context("loopback routes");
        finish(rules, &nft).context("nftables rules")?;
        routed
    })?;
    drop_capabilities()
}

/// The caller's uid and gid, each mapped to itself (the only ids an unprivileged process may
/// map); `setgroups` denied first, as the kernel requires before an unprivileged `gid_map`.
fn map_ids(uid: u32, gid: u32) -> anyhow::Result<()> {
    match std::fs::write("/proc/self/setgroups", "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("/proc/self/setgroups"),
    }
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")).context("uid_map")?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")).context("gid_map")?;
    Ok(())
}

/// `name` from `variable` when set (a build elsewhere, as `EGRESS_RUN_BWRAP`), else in the
/// system's directories: never from `$PATH` (as bubblewrap, see `run`).
fn find_tool(name: &str, package: &str, variable: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        if path.exists() {
            return Ok(path);
        }
        bail!("{variable}={} does not exist", path.display());
    }
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
        .with_context(|| format!("{name} is not installed (package {package})"))
}

/// Runs `f` with `CAP_NET_ADMIN` in the ambient set, so the tools it starts hold it (in this
/// namespace only) although they run as the caller's own, non-root uid.
fn with_net_admin(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    use rustix::thread::{self, CapabilitySet};
    let mut sets = thread::capabilities(None).context("capget")?;
    sets.inheritable = CapabilitySet::NET_ADMIN;
    thread::set_capabilities(None, sets).context("capset")?;
    thread::configure_capability_in_ambient_set(CapabilitySet::NET_ADMIN, true)
        .context("ambient CAP_NET_ADMIN")?;
    f()
}

/// No capability left for bubblewrap to inherit: none ambient, inheritable or permitted. Run by
/// root (uid 0 here too), bubblewrap gets every capability in this namespace again at its
/// `execve`, as it has them all on the host without capture; it needs them there to map root
/// into the sandbox's namespace, and drops them for the command (`--cap-drop ALL`).
fn drop_capabilities() -> anyhow::Result<()> {
    use rustix::thread::{self, CapabilitySet, CapabilitySets};
    thread::clear_ambient_capability_set().context("clearing the ambient set")?;
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .context("dropping capabilities")?;
    Ok(())
}

/// Starts `program args` with `input` on its standard input.
fn start(program: &Path, args: &[&str], input: &str) -> anyhow::Result<std::process::Child> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    // A few hundred bytes: the pipe holds them all, whatever the tool does.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    Ok(child)
}

/// Waits for `child` (`program`, see `start`); its own message is the error.
fn finish(child: std::process::Child, program: &Path) -> anyhow::Result<()> {
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_redirect_tcp_and_dns_and_reject_the_rest() {
        let rules = ruleset();
        assert!(rules.contains("th dport 53 redirect to :5353"));
        assert!(rules.contains("ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :3129"));
        assert!(rules.contains("ip6 daddr != ::1 meta l4proto tcp redirect to :3129"));
        assert!(rules.contains("ip daddr != 127.0.0.0/8 reject"));
        assert_eq!(
            routes(true),
            "link set lo up\nroute add default dev lo src 127.0.0.1\nroute add ::/0 dev lo\n"
        );
    }
}
