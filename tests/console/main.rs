//! The admin console in a real browser (Debian's Chromium through chromedriver), against the
//! real binary, with real curl traffic through the proxy: what a person sees and what their
//! clicks do to the policy file and to held requests.
//!
//! `browser`: the driver; `pages`: the live view, policy editing, approvals, roles; `form`:
//! the policy page's form view;
//! `access`: accessibility (axe-core, light and dark), phone width, screenshots.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod browser;
mod form;
mod load;
mod pages;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use support::{message, Proxy};

/// The viewer token of `Console::start_with_viewer`.
pub(crate) const VIEWER_TOKEN: &str = "viewer-token-0123456789";

/// A proxy with the admin listener and an audit log; `rest` is the rest of the policy. The
/// guard lets it reach the loopback origins (127.0.0.1 only).
pub(crate) struct Console {
    pub proxy: Proxy,
    pub admin: SocketAddr,
    pub token: String,
    pub login_link: String,
    pub audit: std::path::PathBuf,
}

impl Console {
    pub fn start(extra_admin: &str, rest: &str) -> Console {
        let audit_dir = tempfile::tempdir().unwrap().keep();
        let audit = audit_dir.join("audit.jsonl");
        let proxy = Proxy::start(&format!(
            "admin:\n  listen: 127.0.0.1:0\n{extra_admin}audit: {{ path: {} }}\n\
             address_guard: {{ allow_networks: [127.0.0.1/32] }}\ndeny: [blocked.example]\n{rest}",
            audit.display()
        ));
        let admin = proxy.admin_addr();
        let link = proxy.wait_for_log("the login link", |v| {
            message(v).starts_with("admin console login link")
        });
        let token = std::fs::read_to_string(proxy.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        Console {
            proxy,
            admin,
            token,
            login_link: link["url"].as_str().unwrap().to_string(),
            audit,
        }
    }

    /// Like `start`, with a second admin token: `alice`, a viewer, whose token is
    /// `VIEWER_TOKEN`. The directory holds its token file.
    pub fn start_with_viewer(rest: &str) -> (Console, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let viewer = support::write_file(dir.path(), "viewer", &format!("{VIEWER_TOKEN}\n"));
        let tokens = format!(
            "  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n",
            viewer.display()
        );
        (Console::start(&tokens, rest), dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// A GET of the admin API with the admin token, as JSON.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sS", "--noproxy", "*", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(self.url(path))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Logs `browser` in with the one-time link and waits for the console.
    pub fn log_in(&self, browser: &browser::Browser) {
        browser.goto(&self.login_link);
        browser.wait_for("#nav:not([hidden])", support::WAIT);
        assert!(
            !browser.url().contains("code="),
            "the code is gone from the URL"
        );
    }

    /// Logs `browser` in by typing the admin token into the login form (the link works once).
    pub fn log_in_with_token(&self, browser: &browser::Browser) {
        self.log_in_as(browser, &self.token);
    }

    /// Logs `browser` in by typing `token` into the login form.
    pub fn log_in_as(&self, browser: &browser::Browser, token: &str) {
        browser.goto(&self.url("/"));
        let field = browser.wait_for("#page-login:not([hidden]) #login-token", support::WAIT);
        browser.type_into(&field, token);
        browser.click(&browser.wait_for("#login-form button", support::WAIT));
        browser.wait_for("#nav:not([hidden])", support::WAIT);
    }
}

/// A curl through the proxy in the background.
pub(crate) struct Held(Child);

pub(crate) fn held(proxy: &Proxy, url: &str, interface: Option<&str>) -> Held {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-i",
        "--max-time",
        "30",
        "--noproxy",
        "",
        "-x",
        &proxy.url(),
    ]);
    if let Some(interface) = interface {
        command.args(["--interface", interface]);
    }
    let child = command
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    Held(child)
}

impl Held {
    pub fn output(self) -> String {
        let out = self.0.wait_with_output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

/// One curl through the proxy, its whole output with the answer's head.
pub(crate) fn through(proxy: &Proxy, url: &str) -> String {
    held(proxy, url, None).output()
}
