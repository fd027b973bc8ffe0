//! The three standard streams a run of mqctl reads and writes, and whether
//! each is a terminal. The binary hands in the process's own; a test hands in
//! a byte string and buffers, so that it runs mqctl in-process and reads back
//! exactly what a user would have seen. Nothing in the verbs touches
//! `std::io::stdout` or friends directly.

use std::fmt::Display;
use std::io::{BufRead, ErrorKind, IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::output::{failed, Failure, Outcome};

/// Which of the streams is a terminal: progress lines and the "reading from
/// standard input" hint are for people, not for pipes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminals {
    /// Standard input is a terminal (`mqctl produce` then says it waits for lines).
    pub stdin: bool,
    /// Standard output is a terminal (`mqctl consume` then shows no progress).
    pub stdout: bool,
    /// Standard error is a terminal (progress lines are drawn only there).
    pub stderr: bool,
}

/// Standard input, output and error of one run. Output is written a whole
/// line at a time under a lock, so verbs may print from several threads
/// (bench and consume do) without interleaving inside a line.
pub struct Console {
    /// Taken by the one verb that reads it (`produce`), which moves it to a
    /// blocking thread.
    stdin: Mutex<Option<Box<dyn BufRead + Send>>>,
    stdout: Mutex<Box<dyn Write + Send>>,
    stderr: Mutex<Box<dyn Write + Send>>,
    terminals: Terminals,
}

/// A poisoned stream lock only means another thread panicked mid-line; the
/// stream itself is still usable.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Console {
    /// A console over the given streams, none of them a terminal.
    pub fn new(
        stdin: impl BufRead + Send + 'static,
        stdout: impl Write + Send + 'static,
        stderr: impl Write + Send + 'static,
    ) -> Console {
        Console {
            stdin: Mutex::new(Some(Box::new(stdin))),
            stdout: Mutex::new(Box::new(stdout)),
            stderr: Mutex::new(Box::new(stderr)),
            terminals: Terminals::default(),
        }
    }

    /// The process's own standard streams, with their terminal status.
    pub fn stdio() -> Console {
        let terminals = Terminals {
            stdin: std::io::stdin().is_terminal(),
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        };
        // `StdinLock` is not `Send`; a buffered `Stdin` is.
        Console::new(
            std::io::BufReader::new(std::io::stdin()),
            std::io::stdout(),
            std::io::stderr(),
        )
        .with_terminals(terminals)
    }

    /// The same console, with these streams counted as terminals.
    pub fn with_terminals(mut self, terminals: Terminals) -> Console {
        self.terminals = terminals;
        self
    }

    /// Which streams are terminals.
    pub fn terminals(&self) -> Terminals {
        self.terminals
    }

    /// Standard input, for the one verb that reads it; `None` once taken.
    pub fn take_stdin(&self) -> Option<Box<dyn BufRead + Send>> {
        lock(&self.stdin).take()
    }

    /// Writes one line to standard output; a closed pipe is
    /// [`Failure::BrokenPipe`], which ends the run quietly.
    pub fn line(&self, text: impl Display) -> Outcome {
        let mut out = lock(&self.stdout);
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Failure::BrokenPipe),
            Err(e) => Err(failed(format!("cannot write to standard output: {e}"))),
        }
    }

    /// Writes a JSON value as one line to standard output.
    pub fn json_line(&self, value: &serde_json::Value) -> Outcome {
        self.line(value)
    }

    /// A diagnostic line on standard error, `mqctl: ` first.
    pub fn warn(&self, text: impl Display) {
        // Nowhere left to report a failing standard error.
        let _ = writeln!(lock(&self.stderr), "mqctl: {text}");
    }

    /// Writes `text` to standard error as it is (no prefix, no newline) and
    /// flushes: a progress line redrawn in place.
    pub fn draw(&self, text: &str) {
        let mut err = lock(&self.stderr);
        // A failed progress write is not worth failing the command for.
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_go_to_stdout_and_warnings_to_stderr() {
        let (out, err) = (Shared::default(), Shared::default());
        let console = Console::new(&b"in"[..], out.clone(), err.clone());
        console.line("one").unwrap();
        console.json_line(&serde_json::json!({"a": 1})).unwrap();
        console.warn("careful");
        assert_eq!(&*lock(&out.0), b"one\n{\"a\":1}\n");
        assert_eq!(&*lock(&err.0), b"mqctl: careful\n");
        assert!(console.take_stdin().is_some());
        assert!(console.take_stdin().is_none(), "read by one verb only");
        assert_eq!(console.terminals(), Terminals::default());
    }

    #[test]
    fn a_closed_stdout_is_a_broken_pipe() {
        let console = Console::new(&b""[..], ClosedPipe, Shared::default());
        assert!(matches!(console.line("x"), Err(Failure::BrokenPipe)));
    }
}
