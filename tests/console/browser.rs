//! Debian's Chromium driven through chromedriver by fantoccini, wrapped in blocking calls so a
//! test can mix browser steps with curl and the proxy's log. Each browser is fresh: its own
//! chromedriver on a free loopback port and its own profile directory, no network but the
//! admin listener the test opens, no background traffic, no downloads of anything.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::support::wait;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A new headless Chromium; `dark` asks it to prefer the dark colour scheme.
    pub fn start(dark: bool) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (tests/run.sh installs Debian's chromium-driver)");
        wait::listening(("127.0.0.1", port), "chromedriver to listen");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if dark {
            args.push("--force-dark-mode".into());
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session");
        Browser {
            runtime,
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .expect("goto");
    }

    pub fn url(&self) -> String {
        self.runtime
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// The first element `css` selects, waiting up to `within` for it.
    pub fn wait_for(&self, css: &str, within: Duration) -> Element {
        self.runtime
            .block_on(
                self.client()
                    .wait()
                    .at_most(within)
                    .every(Duration::from_millis(50))
                    .for_element(Locator::Css(css)),
            )
            .unwrap_or_else(|e| panic!("no {css} within {within:?}: {e}"))
    }

    /// Every element `css` selects now.
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap()
    }

    pub fn click(&self, element: &Element) {
        self.runtime.block_on(element.click()).expect("click");
    }

    pub fn text(&self, element: &Element) -> String {
        self.runtime.block_on(element.text()).unwrap()
    }

    pub fn type_into(&self, element: &Element, text: &str) {
        self.runtime
            .block_on(element.send_keys(text))
            .expect("typing");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.runtime
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.runtime
            .block_on(self.client().execute_async(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits until `script` (returning a boolean) is true.
    pub fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + super::support::WAIT;
        while self.run(script, vec![]) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn screenshot(&self) -> Vec<u8> {
        self.runtime.block_on(self.client().screenshot()).unwrap()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
