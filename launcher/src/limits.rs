//! egress-run's own open-files limit, raised for the embedded proxy on both platforms.

/// Each connection from the sandbox holds two descriptors in this process (the client's and
/// the destination's): the usual soft limit (1024 on Linux, 256 on macOS) would run out before
/// the proxy's own per-client cap (512) and refuse connections with a reset instead of an
/// answer. Raised after the sandbox (bubblewrap, sandbox-exec) is started, so the command keeps
/// the limit it would have had (a program using select(2) breaks past 1024), and to a bound, not
/// to the hard limit (macOS refuses more than `kern.maxfilesperproc`, 10240 by default).
pub fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANTED: u64 = 8192;
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.map_or(WANTED, |hard| hard.min(WANTED));
    if limit.current.is_some_and(|soft| soft < target) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        );
    }
}
