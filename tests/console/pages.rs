//! The pages at work: a denial appears at once with its reason and rule, "allow this host"
//! changes the file and lets the same request through, an ask is answered from its card, a
//! broken or stale edit is refused with the reason shown and nothing lost, and a viewer sees
//! no button that changes anything.

use std::time::{Duration, Instant};

use serde_json::json;

use super::browser::Browser;
use super::support::origin::Servers;
use super::support::{message, wait, WAIT};
use super::{held, through, Console};

/// Waits until the live view's stream is open (the page is subscribed).
fn subscribed(browser: &Browser) {
    browser.until(
        "the live stream is open",
        "return document.getElementById('live-state').textContent === 'connected'",
    );
}

#[test]
fn a_denial_shows_at_once_with_reason_and_rule_and_allow_this_host_lets_it_through() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let console = Console::start("", "");
    let browser = Browser::start(false);
    console.log_in(&browser);
    browser.goto(&console.url("/#/live?decision=deny"));
    subscribed(&browser);
    assert_eq!(
        browser.run("return document.getElementById('f-decision').value", vec![]),
        "deny",
        "the filter comes from the URL"
    );
    let out = through(&console.proxy, "http://blocked.example/");
    assert!(out.contains("X-Egress-Error: blocked-by-denylist"), "{out}");
    let started = Instant::now();
    let row = browser.wait_for("tr[data-host='blocked.example']", Duration::from_secs(2));
    let shown = started.elapsed();
    let text = browser.text(&row);
    assert!(
        text.contains("blocked-by-denylist") && text.contains("rule blocked.example"),
        "{text}"
    );
    assert!(
        browser
            .all("tr[data-host='blocked.example'] button")
            .is_empty(),
        "an allow entry cannot undo a deny entry: no button"
    );
    let url = format!("http://{origin}/hello");
    let out = through(&console.proxy, &url);
    assert!(out.contains("X-Egress-Error: not-allowlisted"), "{out}");
    let row = browser.wait_for("tr[data-host='127.0.0.1']", Duration::from_secs(2));
    assert!(browser.text(&row).contains("not-allowlisted"));
    println!("a denial reached the live view {shown:?} after curl ended");
    // The button says exactly what it adds before adding it.
    let button = browser.wait_for("tr[data-host='127.0.0.1'] button.allow-host", WAIT);
    browser.click(&button);
    let entry = format!("127.0.0.1:{}", origin.port());
    let question = browser.wait_for("dialog[open] #confirm-text", WAIT);
    assert_eq!(
        browser.text(&question),
        format!("Add \"{entry}\" to the allow list?")
    );
    let diff = browser.text(&browser.wait_for("#confirm-diff", WAIT));
    assert!(diff.contains(&format!("+  - \"{entry}\"")), "{diff}");
    assert!(
        !std::fs::read_to_string(console.proxy.policy_path())
            .unwrap()
            .contains(&entry),
        "nothing is written before the confirmation"
    );
    browser.click(&browser.wait_for("#confirm-ok", WAIT));
    wait::until("the entry is in the file", || {
        std::fs::read_to_string(console.proxy.policy_path())
            .unwrap()
            .contains(&format!("\"{entry}\""))
    });
    console
        .proxy
        .wait_for_log("the reload", |v| message(v) == "policy reloaded");
    let out = through(&console.proxy, &url);
    assert!(out.contains("hello from origin"), "{out}");
    // History and audit say who did it.
    let history = console.api("/api/v1/policy/history");
    assert_eq!(history[0]["who"], "admin", "{history}");
    assert!(history[0]["note"]
        .as_str()
        .unwrap()
        .contains("allowed from the live view"));
    wait::until("the audit line", || {
        std::fs::read_to_string(&console.audit)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"event\":\"policy\"") && l.contains(&entry))
    });
}

#[test]
fn a_held_request_is_answered_from_its_card() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let console = Console::start("", "mode: ask\nask: { timeout: 8s }\n");
    let browser = Browser::start(false);
    console.log_in(&browser);
    browser.goto(&console.url("/#/approvals"));
    subscribed(&browser);
    let url = format!("http://{origin}/hello");
    // Allow once.
    let curl = held(&console.proxy, &url, None);
    let card = browser.wait_for(".card", WAIT);
    let text = browser.text(&card);
    assert!(
        text.contains(&format!("127.0.0.1:{}", origin.port())) && text.contains("1 waiting"),
        "{text}"
    );
    browser.until(
        "the countdown runs",
        "const c = document.querySelector('.countdown'); return !!c && /^[0-9]+ s$/.test(c.textContent) && c.textContent !== '0 s'",
    );
    browser.click(&browser.wait_for(".card button.allow-once", WAIT));
    let out = curl.output();
    assert!(out.contains("hello from origin"), "{out}");
    browser.until(
        "the card is gone",
        "return document.querySelectorAll('.card').length === 0",
    );
    // Nobody answers: refused when the countdown ends.
    let started = Instant::now();
    let out = held(&console.proxy, &url, None).output();
    assert!(out.contains("X-Egress-Error: approval-timeout"), "{out}");
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    browser.until(
        "the expired card is gone",
        "return document.querySelectorAll('.card').length === 0",
    );
    // Always allow releases every waiting client it covers, from two source addresses.
    let first = held(&console.proxy, &url, None);
    let second = held(&console.proxy, &url, Some("127.0.0.2"));
    browser.until(
        "two cards",
        "return document.querySelectorAll('.card').length === 2",
    );
    let button = browser.wait_for(".card button.allow-always-host", WAIT);
    browser.click(&button);
    for curl in [first, second] {
        let out = curl.output();
        assert!(out.contains("hello from origin"), "{out}");
    }
    assert!(std::fs::read_to_string(console.proxy.policy_path())
        .unwrap()
        .contains(&format!("\"127.0.0.1:{}\"", origin.port())));
}

/// Replaces the editor's text (as typing would) and applies it.
fn apply_text(browser: &Browser, text: &str) -> String {
    browser.run(
        "const t = document.getElementById('policy-text'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
        vec![json!(text)],
    );
    browser.click(&browser.wait_for("#policy-preview", WAIT));
    browser.until(
        "the diff is shown",
        "return !document.getElementById('policy-diff').hidden",
    );
    browser.run(
        "document.getElementById('policy-message').textContent = ''",
        vec![],
    );
    browser.click(&browser.wait_for("#policy-apply:not([disabled])", WAIT));
    browser.until(
        "the answer is shown",
        "return document.getElementById('policy-message').textContent.length > 0",
    );
    browser
        .run(
            "return document.getElementById('policy-message').textContent",
            vec![],
        )
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_broken_edit_shows_where_and_a_stale_one_the_conflict_and_nothing_is_lost() {
    let console = Console::start("", "");
    let path = console.proxy.policy_path();
    let browser = Browser::start(false);
    console.log_in(&browser);
    browser.goto(&console.url("/#/policy"));
    browser.until(
        "the policy is loaded",
        "return document.getElementById('policy-text').value.includes('blocked.example')",
    );
    let before = std::fs::read_to_string(&path).unwrap();
    let said = apply_text(&browser, &format!("{before}allow: [new.example\n"));
    assert!(said.starts_with("Not applied: line "), "{said}");
    let at = said["Not applied: line ".len()..]
        .split(':')
        .take(2)
        .collect::<Vec<_>>();
    assert!(
        at.len() == 2 && at.iter().all(|n| n.trim().parse::<u32>().is_ok()),
        "line:column in {said}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    // Someone else changes the policy meanwhile: this editor's apply is refused, its text kept.
    let other = format!("{before}allow: [other.example]\n");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", console.token))
        .arg("-H")
        .arg(format!(
            "If-Match: {}",
            super::support::curl(&[
                "-sS",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-H",
                &format!("Authorization: Bearer {}", console.token),
                &console.url("/api/v1/policy"),
            ])
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .unwrap()
            .trim()
        ))
        .arg("--data-binary")
        .arg(json!({"text": other}).to_string())
        .arg(console.url("/api/v1/policy"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("etag"),
        "{out:?}"
    );
    let mine = format!("{before}allow: [mine.example]\n");
    let said = apply_text(&browser, &mine);
    assert!(said.contains("changed since you loaded it"), "{said}");
    assert_eq!(
        browser.run(
            "return document.getElementById('policy-text').value",
            vec![]
        ),
        mine.as_str(),
        "the editor keeps the text"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), other);
}

#[test]
fn without_a_login_the_page_asks_for_one_and_a_viewer_sees_no_change_buttons() {
    let (console, _dir) = Console::start_with_viewer("mode: ask\n");
    let browser = Browser::start(false);
    browser.goto(&console.url("/"));
    let field = browser.wait_for("#page-login:not([hidden]) #login-token", WAIT);
    assert!(browser.all("#nav:not([hidden])").is_empty());
    browser.type_into(&field, "wrong-token-0123456789");
    browser.click(&browser.wait_for("#login-form button", WAIT));
    let error = browser.wait_for("#login-error", WAIT);
    browser.until(
        "the refusal is shown",
        "return document.getElementById('login-error').textContent.includes('token-invalid')",
    );
    drop(error);
    let field = browser.wait_for("#login-token", WAIT);
    browser.type_into(&field, super::VIEWER_TOKEN);
    browser.click(&browser.wait_for("#login-form button", WAIT));
    browser.wait_for("#nav:not([hidden])", WAIT);
    assert_eq!(
        browser.text(&browser.wait_for("#who", WAIT)),
        "alice (viewer)"
    );
    browser.goto(&console.url("/#/live"));
    subscribed(&browser);
    let out = through(&console.proxy, "http://blocked.example/");
    assert!(out.contains("blocked-by-denylist"), "{out}");
    browser.wait_for("tr[data-host='blocked.example']", WAIT);
    assert!(browser.all("#live-rows button").is_empty());
    browser.goto(&console.url("/#/policy"));
    browser.until(
        "the history is shown",
        "return document.querySelectorAll('#history-rows tr').length > 0",
    );
    for change in [
        "#policy-apply",
        "#policy-preview",
        ".revert",
        "#policy-note",
    ] {
        assert!(browser.all(change).is_empty(), "{change} shown to a viewer");
    }
    // A viewer's stream does not count as someone who can answer.
    let out = through(&console.proxy, "http://127.0.0.1:9/");
    assert!(out.contains("approval-unattended"), "{out}");
}
