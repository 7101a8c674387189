//! Real clients through egress, as a new user would run them: curl, wget, git, Python's urllib,
//! requests, httpx and aiohttp, pip, npm, cargo, Go, Java and Node, each fetching from local
//! registries (a pip simple index, an npm registry, a cargo sparse registry, a git repository)
//! over TLS with the test's own CA, in two setups:
//!
//! - **variables**: `HTTP(S)_PROXY` (and the JVM's properties) pointing at egress's proxy, as
//!   README's first example does;
//! - **sandbox**: under `egress-run`, with only the caller's CA settings passed in.
//!
//! The registries' name (`origin.test`) exists only in the proxy's nameserver, so a client that
//! does not go through the proxy cannot reach them. Each case also fetches from a name the
//! policy refuses and checks what the client shows of the refusal. The results are README's
//! table of clients: every row a case measures must be in README as written.
//!
//! A third setup, **captured**, runs clients under `egress-run` with every proxy variable removed
//! inside the sandbox: what programs that honour none reach through the sandbox's capture and
//! DNS stub (`captured`).
//!
//! `files`: the registries' server. `cases`: the clients. `captured`: without proxy variables.

#[path = "../support/dns.rs"]
mod dns;
mod files;

mod captured;
mod cases;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use egress_config::ListenerProtocols;
use egress_proxy::{BoundListener, ProxyState};

/// Where the test keeps its programs; the package the Node recipe needs is installed beside
/// them by tests/run.sh.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// Everything the cases share, made once per test process.
struct World {
    /// Serves the registries and runs the proxy of the "variables" setup.
    _runtime: tokio::runtime::Runtime,
    _dns: dns::DnsServer,
    /// Every client's working directory: the CA, the trust store, the compiled programs, the
    /// policy; under egress-run the writable directory.
    work: PathBuf,
    /// `https://origin.test:PORT`.
    origin: String,
    /// The same server under a name the policy does not allow.
    denied: String,
    /// The registries in plain HTTP, `http://origin.test:PORT`.
    plain: String,
    /// The proxy of the "variables" setup, `http://127.0.0.1:PORT`.
    proxy: String,
}

static WORLD: OnceLock<World> = OnceLock::new();

fn world() -> &'static World {
    WORLD.get_or_init(World::new)
}

impl World {
    fn new() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // A fixed place under cargo's own scratch directory, emptied first: a temporary
        // directory in a static would never be removed.
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("registries")).unwrap();
        let pki = files::Pki::new(&["origin.test", "denied.test"]);
        std::fs::write(work.join("ca.pem"), &pki.ca_pem).unwrap();
        let tls = files::serve(&runtime, &work.join("registries"), Some(pki.server));
        let port = tls.port();
        let origin = format!("https://origin.test:{port}");
        let plain_port = files::serve(&runtime, &work.join("registries"), None).port();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let dns = dns::DnsServer::start(&[("origin.test", &[loopback])]);
        std::fs::write(
            work.join("policy.yaml"),
            format!(
                "allow: [\"origin.test:{port}\", \"origin.test:{plain_port}\"]\n\
                 dns: {{ nameservers: [\"{}\"], timeout: 2s }}\n\
                 address_guard: {{ allow_networks: [127.0.0.1/32] }}\n",
                dns.addr
            ),
        )
        .unwrap();
        let proxy = start_proxy(&runtime, &work.join("policy.yaml"));
        let programs = clients_dir().join("programs");
        run_ok(
            Command::new("sh")
                .arg(programs.join("registries.sh"))
                .arg(work.join("registries"))
                .arg(&origin),
        );
        build_programs(&work, &programs);
        // Copied into the work directory: under egress-run the sandbox sees the working
        // directory, not wherever the repository happens to be (under /tmp it is hidden by the
        // sandbox's private /tmp).
        for (from, to) in [
            (programs.clone(), work.join("programs")),
            (
                clients_dir().join("node/node_modules"),
                work.join("recipe_modules"),
            ),
        ] {
            // The work directory outlives a run (it is under target/): copy afresh.
            let _ = std::fs::remove_dir_all(&to);
            run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
        }
        World {
            _runtime: runtime,
            _dns: dns,
            work,
            origin,
            denied: format!("https://denied.test:{port}"),
            plain: format!("http://origin.test:{plain_port}"),
            proxy: format!("http://{proxy}"),
        }
    }
}

/// egress's proxy, in this process (the launcher's test binary has no egress-proxy binary to
/// start), on the same policy file egress-run gets.
fn start_proxy(runtime: &tokio::runtime::Runtime, policy: &Path) -> SocketAddr {
    let config = egress_config::load_file(policy).expect("the test's policy loads");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bound = vec![BoundListener {
            listener,
            protocols: ListenerProtocols::Mixed,
            proxy_protocol: None,
            identity: None,
        }];
        let state: Arc<ProxyState> = ProxyState::new(&config);
        tokio::spawn(egress_proxy::run(
            bound,
            state,
            std::future::pending::<()>(),
        ));
        addr
    })
}

/// The Go program and the Java classes, compiled once; the Java trust store holding the test CA.
fn build_programs(work: &Path, programs: &Path) {
    let built = work.join("built");
    std::fs::create_dir_all(&built).unwrap();
    run_ok(
        Command::new("go")
            .args(["build", "-o"])
            .arg(built.join("get"))
            .arg(programs.join("get.go"))
            .env("GOCACHE", work.join("gocache"))
            .env("GOPATH", work.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "off"),
    );
    // Proxy: nil, and statically linked (Go's own resolver): see the program.
    run_ok(
        Command::new("go")
            .args(["build", "-o"])
            .arg(built.join("direct"))
            .arg(programs.join("direct.go"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", work.join("gocache"))
            .env("GOPATH", work.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "off"),
    );
    run_ok(
        Command::new("javac")
            .arg("-d")
            .arg(&built)
            .arg(programs.join("Get.java")),
    );
    run_ok(
        Command::new("keytool")
            .args(["-importcert", "-noprompt", "-alias", "egress-test-ca"])
            .args(["-storetype", "PKCS12", "-storepass", "changeit", "-file"])
            .arg(work.join("ca.pem"))
            .arg("-keystore")
            .arg(work.join("trust.p12")),
    );
}

fn run_ok(command: &mut Command) {
    let out = command.output().expect("start a build step");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The two ways a user runs a client through egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Variables,
    Sandbox,
    /// Under egress-run, every proxy variable removed inside, and its summary shown.
    Captured,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Variables => "variables",
            Setup::Sandbox => "sandbox",
            Setup::Captured => "captured",
        }
    }
}

/// `JAVA_TOOL_OPTIONS` as the caller has it: the trust store holding the test CA.
fn callers_java_options(work: &Path) -> String {
    format!(
        "-Djavax.net.ssl.trustStore={} -Djavax.net.ssl.trustStorePassword=changeit",
        work.join("trust.p12").display()
    )
}

/// Runs `script` with sh in the work directory, in `setup`, with `extra` variables from the
/// caller; what the client printed (stdout and stderr together) and whether it succeeded.
fn run(setup: Setup, script: &str, extra: &[(&str, String)]) -> (bool, String) {
    let w = world();
    let work = &w.work;
    let mut command = match setup {
        Setup::Variables => Command::new("sh"),
        Setup::Sandbox | Setup::Captured => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_egress-run"));
            if setup == Setup::Sandbox {
                c.arg("-q");
            }
            c.arg("--policy")
                .arg(work.join("policy.yaml"))
                .args(["--", "sh"]);
            c
        }
    };
    let ca = work.join("ca.pem");
    // The caller's environment, from nothing: a proxy variable of the machine running the
    // tests must not decide the outcome.
    let script = match setup {
        Setup::Captured => format!("{UNSET_PROXIES}\n{script}"),
        Setup::Variables | Setup::Sandbox => script.to_string(),
    };
    command
        .args(["-c", &script])
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8")
        .env("SETUP", setup.name())
        .env("ORIGIN", &w.origin)
        .env("PLAIN", &w.plain)
        .env("DENIED", &w.denied)
        .env("PROGRAMS", work.join("programs"))
        .env("BUILT", work.join("built"))
        .env("NODE_MODULES", work.join("recipe_modules"))
        .env("CARGO", env!("CARGO"))
        // How each tool is told to trust the test CA, as a user with a private CA would.
        .env("CURL_CA_BUNDLE", &ca)
        .env("GIT_SSL_CAINFO", &ca)
        .env("SSL_CERT_FILE", &ca)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("PIP_CERT", &ca)
        .env("npm_config_cafile", &ca)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env("CARGO_HTTP_CAINFO", &ca)
        // The machine's own pip configuration (extra indexes) stays out of it.
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null());
    if setup == Setup::Variables {
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            command.env(name, &w.proxy);
        }
        let port = w.proxy.rsplit(':').next().unwrap();
        command.env(
            "JAVA_TOOL_OPTIONS",
            format!(
                "{} -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={port} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={port}",
                callers_java_options(work)
            ),
        );
    } else {
        command.env("JAVA_TOOL_OPTIONS", callers_java_options(work));
        command.env("CALLERS_JAVA_OPTIONS", callers_java_options(work));
    }
    // cargo asks rustc for the target; under rustup, its proxy needs to know which toolchain.
    for name in ["RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    let out: Output = command.output().expect("run the client");
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.success(), shown)
}

/// Every variable egress-run sets to point a tool at its proxy (see launcher/src/env.rs), removed
/// (JAVA_TOOL_OPTIONS back to the caller's trust store only): no client can honour them.
const UNSET_PROXIES: &str = "unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY \
    all_proxy NO_PROXY no_proxy NODE_USE_ENV_PROXY npm_config_proxy npm_config_https_proxy \
    PIP_PROXY CARGO_HTTP_PROXY GIT_SSH_COMMAND; \
    export JAVA_TOOL_OPTIONS=\"$CALLERS_JAVA_OPTIONS\"";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// README, where the measured table must stand as the cases measured it.
fn readme() -> &'static str {
    static README: OnceLock<String> = OnceLock::new();
    README.get_or_init(|| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap()
    })
}
