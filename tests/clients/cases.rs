//! One test per client: it fetches from the registries in both setups, is refused a name the
//! policy does not allow, and its row of README's table must read as measured here.

use super::{readme, run, world, Setup};

/// A client, what it runs (sh, in the work directory; `$ORIGIN`, `$DENIED`, `$SETUP`… set by
/// `run`) and what it is expected to do.
struct Case {
    /// The client as README's table names it.
    client: &'static str,
    /// Fetches from `$ORIGIN`; `proof` in its output means the fetch worked.
    fetch: &'static str,
    proof: &'static str,
    /// Whether the fetch works with proxy variables, and under egress-run.
    works: (bool, bool),
    /// Fetches from `$DENIED`, which the policy refuses (`None`: the client never asks the
    /// proxy), and what the client then shows, `…` standing for a part that varies.
    refused: Option<(&'static str, &'static str)>,
}

impl Case {
    fn check(&self) {
        let mut works = Vec::new();
        for setup in [Setup::Variables, Setup::Sandbox] {
            let (ok, shown) = run(setup, self.fetch, &[]);
            let worked = ok && shown.contains(self.proof);
            let expected = match setup {
                Setup::Variables => self.works.0,
                Setup::Sandbox | Setup::Captured => self.works.1,
            };
            assert_eq!(
                worked, expected,
                "{} with {:?}: worked {worked}, expected {expected}:\n{shown}",
                self.client, setup
            );
            works.push(if worked { "yes" } else { "no" });
            if let Some((script, shows)) = self.refused {
                let (ok, shown) = run(setup, script, &[]);
                assert!(!ok, "{} with {setup:?} is refused:\n{shown}", self.client);
                assert!(
                    shows_in_order(&shown, shows),
                    "{} with {setup:?} shows `{shows}`:\n{shown}",
                    self.client
                );
            }
        }
        let shows = match self.refused {
            Some((_, shows)) => format!("`{shows}`"),
            None => "–".to_string(),
        };
        let row = format!(
            "| {} | {} | {} | {shows} |",
            self.client, works[0], works[1]
        );
        assert!(
            readme().contains(&row),
            "README's table of clients must have the row measured here:\n{row}"
        );
    }
}

/// Whether `text` holds the parts of `pattern` between its `…`s, in order.
pub(super) fn shows_in_order(text: &str, pattern: &str) -> bool {
    let mut rest = text;
    for part in pattern.split('…') {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

const PYTHON: &str = "/usr/bin/python3";

#[test]
fn curl() {
    Case {
        client: "curl",
        fetch: r#"curl -sS "$ORIGIN/hello""#,
        proof: "hello from origin",
        works: (true, true),
        refused: Some((
            r#"curl -sS "$DENIED/hello""#,
            "CONNECT tunnel failed, response 403",
        )),
    }
    .check();
}

#[test]
fn wget() {
    Case {
        client: "wget",
        fetch: r#"wget -q -O - --ca-certificate="$SSL_CERT_FILE" "$ORIGIN/hello""#,
        proof: "hello from origin",
        works: (true, true),
        refused: Some((
            r#"wget -O /dev/null --ca-certificate="$SSL_CERT_FILE" "$DENIED/hello""#,
            "Proxy tunneling failed: Forbidden by egress: not-allowlisted",
        )),
    }
    .check();
}

#[test]
fn git_over_https() {
    Case {
        client: "git (https)",
        fetch: r#"rm -rf "clone-$SETUP" && git clone -q --template= "$ORIGIN/repo.git" "clone-$SETUP" && cat "clone-$SETUP/README""#,
        proof: "hello from git",
        works: (true, true),
        refused: Some((
            r#"git ls-remote "$DENIED/repo.git""#,
            "CONNECT tunnel failed, response 403",
        )),
    }
    .check();
}

fn python(library: &'static str, client: &'static str, shows: &'static str) -> Case {
    let fetch = format!(r#"{PYTHON} "$PROGRAMS/get.py" {library} "$ORIGIN/hello""#);
    let refused = format!(r#"{PYTHON} "$PROGRAMS/get.py" {library} "$DENIED/hello""#);
    Case {
        client,
        fetch: Box::leak(fetch.into_boxed_str()),
        proof: "hello from origin",
        works: (true, true),
        refused: Some((Box::leak(refused.into_boxed_str()), shows)),
    }
}

#[test]
fn python_urllib() {
    python(
        "urllib",
        "Python urllib",
        "Tunnel connection failed: 403 Forbidden by egress: not-allowlisted",
    )
    .check();
}

#[test]
fn python_requests() {
    python(
        "requests",
        "Python requests",
        "Tunnel connection failed: 403 Forbidden by egress: not-allowlisted",
    )
    .check();
}

#[test]
fn python_httpx_without_socks_support() {
    // Debian's httpx has no SOCKS support (no socksio): a `socks5h://` ALL_PROXY stops it
    // before its first request.
    let (ok, _) = run(
        Setup::Variables,
        &format!("{PYTHON} -c 'import socksio'"),
        &[],
    );
    assert!(!ok, "this case is about httpx without socksio");
    python(
        "httpx",
        "Python httpx",
        "ProxyError: 403 Forbidden by egress: not-allowlisted",
    )
    .check();
}

#[test]
fn python_aiohttp() {
    python(
        "aiohttp",
        "Python aiohttp",
        "403, message='Forbidden by egress: not-allowlisted'",
    )
    .check();
}

#[test]
fn pip() {
    Case {
        client: "pip",
        fetch: r#"/usr/bin/python3 -m pip download -q --no-deps -d "dl-$SETUP" --index-url "$ORIGIN/simple/" egdemo && ls "dl-$SETUP""#,
        proof: "egdemo-0.1.0-py3-none-any.whl",
        works: (true, true),
        // pip shows the refusal only in its "Retrying" warnings; one retry instead of the
        // default five (about 8 s, see README).
        refused: Some((
            r#"/usr/bin/python3 -m pip download --retries 1 --no-deps -d dl-refused --index-url "$DENIED/simple/" egdemo"#,
            "Tunnel connection failed: 403 Forbidden by egress: not-allowlisted",
        )),
    }
    .check();
}

#[test]
fn npm() {
    Case {
        client: "npm",
        fetch: r#"mkdir -p "npm-$SETUP" && cd "npm-$SETUP" && npm install --no-audit --no-fund --no-update-notifier --cache "$PWD/cache" --registry "$ORIGIN/npm/" egdemo >/dev/null && node -p 'require("egdemo")'"#,
        proof: "hello from egdemo",
        works: (true, true),
        refused: Some((
            r#"npm view --no-update-notifier --cache "$PWD/npm-cache-refused-$SETUP" --registry "$DENIED/npm/" egdemo"#,
            "403 Forbidden by egress: not-allowlisted",
        )),
    }
    .check();
}

#[test]
fn cargo() {
    // A project depending on a crate of a private sparse registry.
    const PROJECT: &str = r#"rm -rf "cargo-$SETUP" && mkdir -p "cargo-$SETUP/src" "cargo-$SETUP/.cargo" && cd "cargo-$SETUP" && : > src/lib.rs && printf '[package]\nname = "user"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n\n[dependencies]\negdemo = { version = "0.1", registry = "local" }\n' > Cargo.toml && printf '[registries.local]\nindex = "sparse+%s/cargo/index/"\n' "$REGISTRY" > .cargo/config.toml && CARGO_HOME="$PWD/home" "$CARGO" fetch"#;
    let fetch = format!(r#"REGISTRY="$ORIGIN"; {PROJECT} && ls home/registry/cache/*/"#);
    // cargo retries a refused tunnel 3 times (about 11 s, see README): not here.
    let refused = format!(r#"REGISTRY="$DENIED"; export CARGO_NET_RETRY=0; {PROJECT}"#);
    Case {
        client: "cargo",
        fetch: Box::leak(fetch.into_boxed_str()),
        proof: "egdemo-0.1.0.crate",
        works: (true, true),
        refused: Some((
            Box::leak(refused.into_boxed_str()),
            "CONNECT tunnel failed, response 403",
        )),
    }
    .check();
}

#[test]
fn go_net_http() {
    Case {
        client: "Go net/http",
        fetch: r#""$BUILT/get" "$ORIGIN/hello""#,
        proof: "hello from origin",
        works: (true, true),
        refused: Some((
            r#""$BUILT/get" "$DENIED/hello""#,
            "Get \"https://…\": Forbidden by egress: not-allowlisted",
        )),
    }
    .check();
}

#[test]
fn java_http_client() {
    Case {
        client: "Java HttpClient",
        fetch: r#"java -cp "$BUILT" Get client "$ORIGIN/hello""#,
        proof: "200 hello from origin",
        works: (true, true),
        refused: Some((
            r#"java -cp "$BUILT" Get client "$DENIED/hello""#,
            "Tunnel failed, got: 403",
        )),
    }
    .check();
}

#[test]
fn java_http_url_connection() {
    Case {
        client: "Java HttpURLConnection",
        fetch: r#"java -cp "$BUILT" Get connection "$ORIGIN/hello""#,
        proof: "200 hello from origin",
        works: (true, true),
        refused: Some((
            r#"java -cp "$BUILT" Get connection "$DENIED/hello""#,
            "Unable to tunnel through proxy. Proxy returns \"HTTP/1.1 403 Forbidden by egress: not-allowlisted\"",
        )),
    }
    .check();
}

#[test]
fn java_under_egress_run_keeps_the_callers_trust_store() {
    // Without the caller's JAVA_TOOL_OPTIONS the JVM trusts only its own CAs: the trust store
    // is what makes `java_http_client` work under egress-run, and egress-run kept it.
    let script = r#"echo "$JAVA_TOOL_OPTIONS"; java -cp "$BUILT" Get client "$ORIGIN/hello""#;
    let (ok, shown) = run(
        Setup::Sandbox,
        script,
        &[("JAVA_TOOL_OPTIONS", String::new())],
    );
    assert!(!ok, "{shown}");
    assert!(shown.contains("PKIX path building failed"), "{shown}");
    let (ok, shown) = run(Setup::Sandbox, script, &[]);
    assert!(ok, "{shown}");
    let trust = world().work.join("trust.p12");
    let expected = format!(
        "-Djavax.net.ssl.trustStore={} -Djavax.net.ssl.trustStorePassword=changeit -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128",
        trust.display()
    );
    assert!(shown.starts_with(&expected), "{shown}");
}

/// Node's major version: the Node rows of README were measured with Node 20.
fn node_major() -> u32 {
    let (ok, shown) = run(Setup::Variables, "node -p process.versions.node", &[]);
    assert!(ok, "{shown}");
    shown.trim().split('.').next().unwrap().parse().unwrap()
}

#[test]
fn node_fetch_ignores_proxy_variables() {
    assert_eq!(
        node_major(),
        20,
        "README's Node rows were measured with Node 20: measure them again"
    );
    Case {
        client: "Node 20 `fetch`",
        fetch: r#"node "$PROGRAMS/fetch.js" "$ORIGIN/hello""#,
        proof: "hello from origin",
        // Under egress-run its connection is captured (see captured.rs).
        works: (false, true),
        refused: None,
    }
    .check();
}

#[test]
fn node_fetch_with_the_readme_recipe() {
    assert_eq!(
        node_major(),
        20,
        "README's Node rows were measured with Node 20"
    );
    // The recipe: undici's EnvHttpProxyAgent as fetch's dispatcher, loaded by NODE_OPTIONS
    // (which egress-run passes on as the caller set it).
    const WITH_RECIPE: &str = r#"export NODE_PATH="$NODE_MODULES" NODE_OPTIONS="--require $PROGRAMS/proxy-agent.cjs --no-warnings";"#;
    let fetch = format!(r#"{WITH_RECIPE} node "$PROGRAMS/fetch.js" "$ORIGIN/hello""#);
    let refused = format!(r#"{WITH_RECIPE} node "$PROGRAMS/fetch.js" "$DENIED/hello""#);
    Case {
        client: "Node 20 `fetch` + undici `EnvHttpProxyAgent`",
        fetch: Box::leak(fetch.into_boxed_str()),
        proof: "hello from origin",
        works: (true, true),
        refused: Some((
            Box::leak(refused.into_boxed_str()),
            "fetch failed: Request was cancelled.: Proxy response (403) !== 200 when HTTP Tunneling",
        )),
    }
    .check();
}
