//! mqctl run in this process (`mqctl::run`, the library behind the binary)
//! with a given standard input and captured output: no binary to build or
//! to go stale, and exactly the bytes a user would have seen.

use std::io::{Cursor, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How long one run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What a run of mqctl printed and how it exited.
#[derive(Debug)]
pub struct Out {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// The run, which must have exited 0.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "mqctl failed: {self:?}");
        self
    }

    /// Standard output as one JSON value a line.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("captured output")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("captured output")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `mqctl [--namesrv <namesrv>] <args>` with `stdin` as standard input
/// and no NAMESRV_ADDR, none of the streams a terminal.
pub fn mqctl(namesrv: Option<&str>, args: &[&str], stdin: &[u8]) -> Out {
    mqctl_env(namesrv, args, stdin, &[])
}

/// [`mqctl`] with the environment variables `env` (and no others).
pub fn mqctl_env(namesrv: Option<&str>, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Out {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut argv = vec!["mqctl".to_owned()];
    if let Some(ns) = namesrv {
        argv.extend(["--namesrv".to_owned(), ns.to_owned()]);
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let (stdout, stderr) = (Captured::default(), Captured::default());
    let console =
        ::mqctl::Console::new(Cursor::new(stdin.to_vec()), stdout.clone(), stderr.clone());
    // On a thread of its own, so that a run that hangs fails the test
    // instead of blocking it.
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only if the test already failed.
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let _ = done.send(::mqctl::run(argv, lookup, &console));
    });
    let code = match finished.recv_timeout(RUN_LIMIT) {
        Ok(code) => code,
        Err(RecvTimeoutError::Timeout) => panic!("mqctl {args:?} did not finish in {RUN_LIMIT:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("mqctl {args:?} panicked: {}", stderr.text()),
    };
    Out {
        code: code.into(),
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

/// The one line a failed mqctl writes: exit `code`, one `mqctl: ` line on
/// stderr containing `contains`, nothing on stdout.
pub fn assert_one_error_line(out: &Out, code: i32, contains: &str) {
    assert_eq!(out.code, code, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {out:?}");
    assert!(lines[0].starts_with("mqctl: "), "{out:?}");
    assert!(lines[0].contains(contains), "{contains:?} in {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
