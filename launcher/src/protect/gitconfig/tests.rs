//! The parser against git's syntax, and what counts as running code.
use super::*;

fn entry(section: &str, sub: Option<&str>, key: &str, value: Option<&str>) -> Entry {
    Entry {
        section: section.into(),
        subsection: sub.map(Into::into),
        key: key.into(),
        value: value.map(Into::into),
    }
}

#[test]
fn git_config_syntax_is_read_as_git_reads_it() {
    let text = "\u{feff}# comment\n[core]\n\tRepositoryFormatVersion = 0\n\tbare\n\
                [remote \"origin\"] url = \"https://h/x\" ; comment\n\
                [Alias] st = \"!echo \\\"a b\\\"\" # c\n\
                [branch.Main]\n  merge = refs/heads/main  \n\
                [x]\n  long = one \\\n two\n  tab = a\\tb\n  q = \" kept \"\n";
    let entries = parse(text).unwrap();
    assert_eq!(
        entries,
        [
            entry("core", None, "repositoryformatversion", Some("0")),
            entry("core", None, "bare", None),
            entry("remote", Some("origin"), "url", Some("https://h/x")),
            entry("alias", None, "st", Some("!echo \"a b\"")),
            entry("branch", Some("main"), "merge", Some("refs/heads/main")),
            entry("x", None, "long", Some("one  two")),
            entry("x", None, "tab", Some("a\tb")),
            entry("x", None, "q", Some(" kept ")),
        ]
    );
}

#[test]
fn what_git_refuses_is_refused() {
    for bad in [
        "key = 1\n",            // no section
        "[core\nx = 1\n",       // unterminated header
        "[core]\nx = \"open\n", // unterminated quote
        "[core]\nx = a\\q\n",   // unknown escape
        "[core]\n1x = 1\n",     // key must start with a letter
        "[core]\nx y = 1\n",    // junk after a key
        "[a \"b\nc\"]\n",       // newline in a subsection
        "[]\n",                 // empty section
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_fresh_clone_is_inert_and_anything_that_runs_is_not() {
    let clone = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\
                 \tlogallrefupdates = true\n[remote \"origin\"]\n\turl = http://127.0.0.1/x.git\n\
                 \tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\
                 \tremote = origin\n\tmerge = refs/heads/main\n";
    assert!(parse(clone).unwrap().iter().all(inert));
    for code in [
        "[core]\nfsmonitor = touch x",
        "[core]\nhooksPath = /tmp/h",
        "[core]\npager = evil",
        "[core]\nsshCommand = evil",
        "[alias]\nst = status",
        "[include]\npath = ../x",
        "[includeIf \"gitdir:/\"]\npath = x",
        "[filter \"a\"]\nclean = evil",
        "[diff \"a\"]\ntextconv = evil",
        "[diff]\nexternal = evil",
        "[credential]\nhelper = !evil",
        "[remote \"o\"]\nurl = ext::sh -c evil",
        "[submodule \"s\"]\nupdate = !evil",
        "[protocol \"ext\"]\nallow = always",
        "[url \"ext::sh\"]\ninsteadOf = https://",
        "[hook \"x\"]\ncommand = evil",
        "[filter \"lfs\"]\nclean = evil",
        "[somethingnew]\nkey = 1",
    ] {
        let entries = parse(code).unwrap();
        assert!(!entries.iter().all(inert), "{code:?}");
    }
    let lfs = "[filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\tsmudge = git-lfs smudge -- %f\n\
               \tprocess = git-lfs filter-process\n\trequired = true\n";
    assert!(parse(lfs).unwrap().iter().all(inert));
}

#[test]
fn paths_a_config_names_are_found() {
    let text = "[include]\npath = ../shared.gitconfig\n[includeIf \"onbranch:x\"]\npath = ~/x\n\
                [core]\nhooksPath = .husky\nfsmonitor = true\npager = ./tools/pager --x\n\
                editor = vim\n[alias]\nfmt = !./scripts/fmt.sh\n[filter \"a\"]\nclean = tr a b\n";
    assert_eq!(
        named_paths(&parse(text).unwrap()),
        [
            Named::Include("../shared.gitconfig".into()),
            Named::Include("~/x".into()),
            Named::HooksDir(".husky".into()),
            Named::Program("./tools/pager".into()),
            Named::Program("./scripts/fmt.sh".into()),
        ]
    );
}
