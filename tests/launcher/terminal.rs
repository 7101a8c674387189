//! egress-run on a real terminal (tmux): interactive programs, TIOCSTI, Ctrl-C.

use super::*;

/// A tmux server of the test's own (its own socket), running one command on a real terminal;
/// killed when dropped.
struct Terminal {
    socket: String,
}

impl Terminal {
    /// Starts `command` (a shell command line) in a 100×20 terminal.
    fn start(label: &str, command: &str) -> Terminal {
        let terminal = Terminal {
            socket: format!("egress-run-{label}-{}", std::process::id()),
        };
        let started = terminal.tmux(&["new-session", "-d", "-x", "100", "-y", "20", command]);
        assert!(started.status.success(), "{started:?}");
        terminal
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Waits until `needle` is on the screen, and returns the screen.
    fn wait_for(&self, needle: &str) -> String {
        let mut shown = String::new();
        wait::until(&format!("{needle:?} is on the terminal"), || {
            shown = text(&self.tmux(&["capture-pane", "-p"]).stdout);
            shown.contains(needle)
        });
        shown
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        // tmux leaves its socket behind; it is this test's, in tmux's per-user directory.
        let base = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let uid = rustix::process::getuid().as_raw();
        let _ = std::fs::remove_file(format!("{base}/tmux-{uid}/{}", self.socket));
    }
}

#[test]
fn an_interactive_program_works_on_a_terminal_under_tmux() {
    let work = tempfile::tempdir().unwrap();
    // Also on a real terminal, injecting keystrokes into it (TIOCSTI) is refused.
    let program = "import sys, fcntl, termios, errno\n\
print('tty' if sys.stdin.isatty() else 'no tty')\n\
try:\n    fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('tiocsti injected')\n\
except OSError as e:\n    print('tiocsti refused', errno.errorcode[e.errno])\n\
name = input('name? '); print('hello', name)";
    let command = format!(
        "cd {} && {} -q -- python3 -c \"{program}\"; echo exit=$?; sleep 30",
        work.path().display(),
        egress_run()
    );
    let terminal = Terminal::start("interactive", &command);
    terminal.wait_for("name?");
    terminal.send_keys(&["world", "Enter"]);
    let shown = terminal.wait_for("exit=0");
    assert!(
        shown.contains("tty\ntiocsti refused EPERM\nname? world\nhello world\nexit=0"),
        "{shown}"
    );
}

#[test]
fn ctrl_c_at_the_terminal_reaches_the_command_once_and_it_ends_its_own_way() {
    let work = tempfile::tempdir().unwrap();
    // The command counts the SIGINTs it gets and takes its time to clean up after the first:
    // a Ctrl-C passed on by egress-run as well as delivered by the terminal would show as 2, and
    // one that killed bubblewrap would end it before "cleaned up".
    std::fs::write(
        work.path().join("app.py"),
        "import signal, sys, time\n\
         seen = []\n\
         signal.signal(signal.SIGINT, lambda *_: seen.append(1))\n\
         print('ready', flush=True)\n\
         while not seen: time.sleep(0.01)\n\
         time.sleep(0.5)\n\
         print('cleaned up after', len(seen), 'interrupt(s)', flush=True)\n\
         sys.exit(3)\n",
    )
    .unwrap();
    // The pane's own program ignores SIGINT (so the pane outlives the Ctrl-C) and starts
    // egress-run with the default disposition, as an interactive shell would.
    std::fs::write(
        work.path().join("pane.py"),
        "import signal, subprocess, sys, time\n\
         signal.signal(signal.SIGINT, signal.SIG_IGN)\n\
         code = subprocess.call(sys.argv[1:], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))\n\
         print('exit', code, flush=True)\n\
         time.sleep(30)\n",
    )
    .unwrap();
    let command = format!(
        "cd {} && python3 pane.py {} -q -- python3 app.py",
        work.path().display(),
        egress_run()
    );
    let terminal = Terminal::start("ctrl-c", &command);
    terminal.wait_for("ready");
    terminal.send_keys(&["C-c"]);
    let shown = terminal.wait_for("exit ");
    assert!(
        shown.contains("cleaned up after 1 interrupt(s)\nexit 3"),
        "{shown}"
    );
}
