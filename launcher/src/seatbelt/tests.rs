use super::*;

/// Paths a profile must carry unharmed: spaces, both quotes, a backslash, SBPL's own
/// parentheses and comment character, a newline, Unicode.
fn awkward_plan() -> Plan {
    Plan {
        proxy_port: 49152,
        writable: vec![
            "/Users/dev/my project".into(),
            "/Users/dev/it's \"quoted\"".into(),
        ],
        temp: "/private/var/folders/xy/T/egress-run.0a1b2c3d4e5f".into(),
        secrets: vec![
            "/Users/dev/.ssh".into(),
            "/Users/dev/my project/.env".into(),
            "/Users/zoë/密钥 (old); \\x\nnext".into(),
        ],
        unmovable: vec!["/Users/dev/my project".into()],
        read_only: vec!["/Users/dev/my project/.git/hooks".into()],
    }
}

const AWKWARD_RULES: &str = "
; Writable: the working tree, --allow-write paths, the run's own temporary directory.
(allow file-write* (subpath (param \"WRITABLE_0\")))
(allow file-write* (subpath (param \"WRITABLE_1\")))
(allow file-write* (subpath (param \"WRITABLE_2\")))

; Kept as they are inside the writable trees: what the host runs code from.
(deny file-write* file-link file-clone (subpath (param \"READ_ONLY_0\")))

; Kept where they are: neither renamed nor removed.
(deny file-write-unlink (literal (param \"UNMOVABLE_0\")))

; Secrets: not read, written, moved, hard-linked or cloned under another name.
(deny file-read* file-write* file-link file-clone (subpath (param \"SECRET_0\")))
(deny file-read* file-write* file-link file-clone (subpath (param \"SECRET_1\")))
(deny file-read* file-write* file-link file-clone (subpath (param \"SECRET_2\")))

; The network: only the proxy.
(allow network-outbound (remote ip \"localhost:49152\"))
";

#[test]
fn the_profile_names_parameters_and_never_a_path() {
    let profile = profile(&awkward_plan());
    assert_eq!(profile.text, format!("{BASE}{AWKWARD_RULES}"));
    let params: Vec<(&str, &str)> = profile
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        params,
        [
            ("WRITABLE_0", "/Users/dev/my project"),
            ("WRITABLE_1", "/Users/dev/it's \"quoted\""),
            (
                "WRITABLE_2",
                "/private/var/folders/xy/T/egress-run.0a1b2c3d4e5f"
            ),
            ("READ_ONLY_0", "/Users/dev/my project/.git/hooks"),
            ("UNMOVABLE_0", "/Users/dev/my project"),
            ("SECRET_0", "/Users/dev/.ssh"),
            ("SECRET_1", "/Users/dev/my project/.env"),
            ("SECRET_2", "/Users/zoë/密钥 (old); \\x\nnext"),
        ]
    );
    assert!(!profile.text.contains("/Users"), "no path in the text");
    assert_balanced(&profile.text);
}

#[test]
fn the_fixed_part_is_closed_by_default_and_open_where_tools_need_it() {
    let lines: Vec<&str> = BASE.lines().filter(|l| !l.starts_with(';')).collect();
    assert_eq!(lines[..2], ["(version 1)", "(deny default)"]);
    // Exec and fork without a filter; the filter is on signals and process inspection.
    for rule in [
        "(allow process-exec)",
        "(allow process-fork)",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        "(allow user-preference-read)",
        "(allow ipc-posix-sem)",
        "(allow pseudo-tty)",
    ] {
        assert!(lines.contains(&rule), "{rule}");
    }
    // Allow-lists, not open grants: every mach-lookup and sysctl rule names what it allows.
    for open in [
        "(allow mach-lookup)",
        "(allow sysctl-read)",
        "(allow network",
        "(allow file-write*)",
    ] {
        assert!(
            !lines
                .iter()
                .any(|l| l.trim() == open || l.starts_with(open)),
            "{open}"
        );
    }
    // Other terminals: not read by name; only those opened inside are, and that rule comes after.
    let position = |rule: &str| lines.iter().position(|l| l.contains(rule)).unwrap();
    assert!(
        position("(deny file-read-data (regex #\"^/dev/ttys[0-9]+$\"))")
            < position("(extension \"com.apple.sandbox.pty\")")
    );
    assert!(position("(allow file-read*)") < position("(deny file-read-data"));
    for absent in [
        "kern.procargs",
        "com.apple.dnssd",
        "mDNSResponder\")",
        "com.apple.trustd",
        "launchservicesd",
        "com.apple.pasteboard",
        "appleevent-send",
        "job-creation",
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(absent)),
            "{absent} is not allowed"
        );
    }
    assert_balanced(BASE);
}

/// Parentheses balanced outside strings and regexes, every form closed on the line it opens
/// at or after: sandbox-exec would refuse the profile otherwise.
fn assert_balanced(text: &str) {
    let mut depth = 0i32;
    for line in text.lines().filter(|l| !l.starts_with(';')) {
        let mut in_string = false;
        for c in line.chars() {
            match c {
                '"' => in_string = !in_string,
                '(' if !in_string => depth += 1,
                ')' if !in_string => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "{line}");
        }
        assert!(!in_string, "a string left open: {line}");
    }
    assert_eq!(depth, 0);
}

#[test]
fn a_read_only_run_writes_only_its_temporary_directory() {
    let plan = Plan {
        proxy_port: 3128,
        temp: "/private/var/folders/xy/T/egress-run.1".into(),
        ..Plan::default()
    };
    let profile = profile(&plan);
    assert_eq!(
        profile.text,
        format!(
            "{BASE}
; Writable: the working tree, --allow-write paths, the run's own temporary directory.
(allow file-write* (subpath (param \"WRITABLE_0\")))

; The network: only the proxy.
(allow network-outbound (remote ip \"localhost:3128\"))
"
        )
    );
    assert_eq!(
        profile.params,
        [(
            "WRITABLE_0".to_string(),
            PathBuf::from("/private/var/folders/xy/T/egress-run.1")
        )]
    );
}

#[test]
fn sandbox_exec_gets_parameters_then_the_profile_then_the_command() {
    let profile = Profile {
        text: "(version 1)".into(),
        params: vec![
            ("WRITABLE_0".into(), "/Users/a b/p=q".into()),
            ("SECRET_0".into(), "/Users/zoë/.ssh".into()),
        ],
    };
    let args = command_line(&profile, &["-c".into(), "make -j4".into()]);
    assert_eq!(
        args,
        [
            "-D",
            "WRITABLE_0=/Users/a b/p=q",
            "-D",
            "SECRET_0=/Users/zoë/.ssh",
            "-p",
            "(version 1)",
            "--",
            "-c",
            "make -j4",
        ]
    );
    assert_eq!(
        shown(SANDBOX_EXEC, &args),
        "/usr/bin/sandbox-exec -D 'WRITABLE_0=/Users/a b/p=q' -D 'SECRET_0=/Users/zoë/.ssh' \
         -p '(version 1)' -- -c 'make -j4'"
    );
}

#[test]
fn shown_words_come_back_unchanged_through_a_shell() {
    let words: Vec<OsString> = [
        "plain",
        "it's",
        "a \"b\" \\c",
        "$HOME `id`",
        "line\nbreak",
        "zoë",
        "",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let line = shown("printf", &[&["%s\\0".into()], &words[..]].concat());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .unwrap();
    let back: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .split_terminator('\0')
        .collect();
    let expected: Vec<&str> = words.iter().map(|w| w.to_str().unwrap()).collect();
    assert_eq!(back, expected, "{line}");
}
