//! The policy page's form view: the allow and deny entries listed, one added and one removed
//! with the keyboard and the mouse, the diff previewed, applied with a note — the file keeps
//! its comments, the new entry lets a request through, the history holds the note — and a
//! viewer sees the lists without a control that changes them.

use super::browser::Browser;
use super::support::origin::Servers;
use super::support::{message, wait, WAIT};
use super::{through, Console};

/// The entries the form lists for `list`, in order.
fn listed(browser: &Browser, list: &str) -> Vec<String> {
    let shown = browser.run(
        "return [...document.querySelectorAll(`#form-${arguments[0]} li code`)].map(c => c.textContent)",
        vec![serde_json::json!(list)],
    );
    serde_json::from_value(shown).unwrap()
}

fn switch_to_form(browser: &Browser, console: &Console) {
    browser.goto(&console.url("/#/policy"));
    browser.until(
        "the policy is loaded",
        "return document.getElementById('policy-text').value.includes('blocked.example')",
    );
    browser.click(&browser.wait_for("#policy-tab-form", WAIT));
    browser.wait_for("#policy-form:not([hidden]) #form-deny li code", WAIT);
    assert_eq!(
        browser.run(
            "return document.getElementById('policy-yaml').hidden && document.getElementById('policy-tab-form').getAttribute('aria-selected')",
            vec![]
        ),
        "true"
    );
}

#[test]
fn the_form_adds_and_removes_entries_through_the_diff_and_keeps_the_comments() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let console = Console::start(
        "",
        "# the team's list\nallow:\n  - keep.example # asked by ops\n",
    );
    let path = console.proxy.policy_path();
    let before = std::fs::read_to_string(&path).unwrap();
    let url = format!("http://{origin}/hello");
    let out = through(&console.proxy, &url);
    assert!(out.contains("X-Egress-Error: not-allowlisted"), "{out}");
    let browser = Browser::start(false);
    console.log_in(&browser);
    switch_to_form(&browser, &console);
    assert_eq!(listed(&browser, "allow"), ["keep.example"]);
    assert_eq!(listed(&browser, "deny"), ["blocked.example"]);
    // A mistyped entry: the hint says so as it is typed, and the server refuses it on submit.
    let field = browser.wait_for("#form-allow-entry", WAIT);
    browser.type_into(&field, "bad entry");
    browser.until(
        "the hint flags the entry",
        "return document.getElementById('form-allow-entry').getAttribute('aria-invalid') === 'true' && document.getElementById('form-allow-hint').textContent.includes('does not look like an entry')",
    );
    browser.type_into(&field, "\u{E007}"); // Enter submits the form
    browser.until(
        "the refusal is shown",
        "return document.getElementById('policy-message').textContent.includes('bad-entry')",
    );
    assert_eq!(listed(&browser, "allow"), ["keep.example"]);
    // The real entry, typed and submitted with Enter.
    browser.run(
        "document.getElementById('form-allow-entry').value = ''",
        vec![],
    );
    let entry = format!("127.0.0.1:{}", origin.port());
    browser.type_into(&field, &format!("{entry}\u{E007}"));
    browser.until(
        "the entry is listed",
        &format!(
            "return [...document.querySelectorAll('#form-allow li code')].some(c => c.textContent === '{entry}')"
        ),
    );
    // Remove the deny entry with its button.
    browser.click(&browser.wait_for(
        "#form-deny button.remove[data-entry='blocked.example']",
        WAIT,
    ));
    browser.until(
        "the deny list is empty",
        "return document.querySelectorAll('#form-deny li code').length === 0",
    );
    assert_eq!(listed(&browser, "allow"), ["keep.example", entry.as_str()]);
    // Nothing is written before apply; the diff shows both changes.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    browser.click(&browser.wait_for("#policy-preview", WAIT));
    let diff = browser.text(&browser.wait_for("#policy-diff:not([hidden])", WAIT));
    assert!(diff.contains(&format!("+  - \"{entry}\"")), "{diff}");
    assert!(diff.contains("-deny: [blocked.example]"), "{diff}");
    assert!(diff.contains("+deny: []"), "{diff}");
    let note = browser.wait_for("#policy-note", WAIT);
    browser.type_into(&note, "let the origin through, unblock");
    browser.click(&browser.wait_for("#policy-apply:not([disabled])", WAIT));
    browser.until(
        "applied",
        "return document.getElementById('policy-message').textContent.startsWith('Applied as version')",
    );
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        after,
        before
            .replace("deny: [blocked.example]", "deny: []")
            .replace(
                "  - keep.example # asked by ops\n",
                &format!("  - keep.example # asked by ops\n  - \"{entry}\"\n")
            ),
        "only the two entries changed; the comments are kept"
    );
    console
        .proxy
        .wait_for_log("the reload", |v| message(v) == "policy reloaded");
    let out = through(&console.proxy, &url);
    assert!(out.contains("hello from origin"), "{out}");
    let history = console.api("/api/v1/policy/history");
    assert_eq!(
        (history[0]["who"].as_str(), history[0]["note"].as_str()),
        (Some("admin"), Some("let the origin through, unblock")),
        "{history}"
    );
    browser.until(
        "the history row shows the note",
        "return document.getElementById('history-rows').textContent.includes('let the origin through, unblock')",
    );
    wait::until("the audit line", || {
        std::fs::read_to_string(&console.audit)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"event\":\"policy\"") && l.contains(&entry))
    });
}

#[test]
fn the_tabs_answer_the_arrow_keys_and_a_viewer_sees_the_lists_read_only() {
    let (console, _dir) = Console::start_with_viewer("allow: [a.example, \"b.example:8443\"]\n");
    let browser = Browser::start(true);
    console.log_in_as(&browser, super::VIEWER_TOKEN);
    browser.goto(&console.url("/#/policy"));
    browser.until(
        "the policy is loaded",
        "return document.getElementById('policy-text').value.includes('blocked.example')",
    );
    // From the selected YAML tab, an arrow key moves to the form and focuses its tab.
    let yaml = browser.wait_for("#policy-tab-yaml", WAIT);
    browser.type_into(&yaml, "\u{E012}"); // ArrowLeft
    browser.wait_for("#policy-form:not([hidden]) #form-allow li code", WAIT);
    assert_eq!(
        browser.run("return document.activeElement.id", vec![]),
        "policy-tab-form"
    );
    assert_eq!(listed(&browser, "allow"), ["a.example", "b.example:8443"]);
    assert_eq!(listed(&browser, "deny"), ["blocked.example"]);
    for change in [
        "#form-allow-add",
        "#form-deny-add",
        "#form-allow-entry",
        "#policy-form button",
        "#policy-apply",
        "#policy-preview",
    ] {
        assert!(browser.all(change).is_empty(), "{change} shown to a viewer");
    }
}
