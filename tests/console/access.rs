//! Accessibility and reach: axe-core (fetched with `npm pack` at test time, never committed)
//! finds no serious or critical violation on any page, in the light and the dark scheme; the
//! pages fit a phone's width; screenshots of the main pages (into `EGRESS_SCREENSHOTS` when
//! set, as docs/ holds them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::browser::Browser;
use super::support::origin::Servers;
use super::{held, through, Console};

/// axe-core's browser build, from the npm registry through npm itself.
fn axe_source(dir: &Path) -> String {
    let out = Command::new("npm")
        .args(["pack", "axe-core@4", "--silent", "--pack-destination"])
        .arg(dir)
        .current_dir(dir)
        .output()
        .expect("npm (tests/run.sh installs it)");
    assert!(out.status.success(), "npm pack axe-core: {out:?}");
    let tarball = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let status = Command::new("tar")
        .args(["xzf", &tarball, "package/axe.min.js"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(dir.join("package/axe.min.js")).unwrap()
}

/// The serious and critical violations axe finds on the page shown now.
fn violations(browser: &Browser, axe: &str) -> Vec<String> {
    browser.run(&format!("{axe}\n;return true;"), vec![]);
    let found = browser.run_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, { resultTypes: ['violations'] })
           .then(r => done({ checked: r.passes.length, bad: r.violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', ')) }))
           .catch(e => done({ checked: 0, bad: ['axe failed: ' + e] }));",
        vec![],
    );
    // axe ran its rules (a page it could not check would pass vacuously).
    assert!(found["checked"].as_u64().unwrap_or(0) > 10, "{found}");
    serde_json::from_value(found["bad"].clone()).unwrap()
}

const PAGES: [&str; 6] = [
    "live",
    "top",
    "policy",
    "policy-form",
    "approvals",
    "status",
];

/// Shows `page` with something on it, and waits until it has rendered.
fn show(browser: &Browser, console: &Console, page: &str) {
    if page == "policy-form" {
        // The policy page's form view, through its tab.
        show(browser, console, "policy");
        browser.click(&browser.wait_for("#policy-tab-form", super::support::WAIT));
        browser.until(
            page,
            "return document.querySelectorAll('#policy-form:not([hidden]) #form-deny li code').length > 0",
        );
        return;
    }
    browser.goto(&console.url(&format!("/#/{page}")));
    let ready = match page {
        "live" => "return document.querySelectorAll('#live-rows tr').length > 0",
        "top" => "return document.querySelectorAll('#top-blocked tr').length > 0",
        "policy" => "return document.querySelectorAll('#history-rows tr').length > 0",
        "approvals" => "return document.querySelectorAll('.card').length > 0",
        _ => "return document.querySelectorAll('#status-list dt').length > 0",
    };
    browser.until(page, ready);
}

#[test]
fn no_serious_accessibility_violations_in_light_and_dark_and_the_pages_fit_a_phone() {
    let work = tempfile::tempdir().unwrap();
    let axe = axe_source(work.path());
    let servers = Servers::new();
    let origin = servers.http_origin();
    let console = Console::start("", "mode: ask\nask: { timeout: 60s }\n");
    let shots: PathBuf = std::env::var_os("EGRESS_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let mut found = Vec::new();
    for dark in [false, true] {
        let browser = Browser::start(dark);
        if dark {
            console.log_in_with_token(&browser);
        } else {
            console.log_in(&browser);
        }
        assert_eq!(
            browser.run(
                "return matchMedia('(prefers-color-scheme: dark)').matches",
                vec![]
            ),
            json!(dark)
        );
        browser.goto(&console.url("/#/live"));
        browser.until(
            "the stream is open",
            "return document.getElementById('live-state').textContent === 'connected'",
        );
        // Something on every page: denials, and a held request for the approvals page.
        through(&console.proxy, "http://blocked.example/");
        let _held = held(&console.proxy, &format!("http://{origin}/hello"), None);
        for page in PAGES {
            show(&browser, &console, page);
            for v in violations(&browser, &axe) {
                found.push(format!(
                    "{} {page}: {v}",
                    if dark { "dark" } else { "light" }
                ));
            }
            if !dark {
                let png = browser.screenshot();
                assert_eq!(&png[..4], b"\x89PNG");
                std::fs::write(shots.join(format!("console-{page}.png")), png).unwrap();
            }
        }
        if !dark {
            browser.resize(390, 844);
            for page in PAGES {
                show(&browser, &console, page);
                let fits = browser.run(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                    vec![],
                );
                assert_eq!(fits, json!(true), "{page} is wider than a phone");
            }
            show(&browser, &console, "approvals");
            let png = browser.screenshot();
            std::fs::write(shots.join("console-phone-approvals.png"), png).unwrap();
        }
        // Keyboard: every page is reachable by Tab from the top, and focus is visible.
        browser.resize(1280, 900);
        show(&browser, &console, "live");
        let reachable = browser.run(
            "return [...document.querySelectorAll('nav a')].every(a => a.tabIndex >= 0)",
            vec![],
        );
        assert_eq!(reachable, json!(true));
    }
    assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));
}
