//! A panic is a bug, but it still ends mqctl with one line and exit 1, never
//! a backtrace dump. [`catch`] turns a panic of the run into its message;
//! [`hook`], which only the binary installs (a library must not replace a
//! process-wide hook; tests keep the default one), silences the default
//! report on the thread that runs mqctl and remembers where it panicked, so
//! that the one line can say so. A panic on any other thread (the client's)
//! is reported by the hook as one line of its own.

use std::cell::{Cell, RefCell};
use std::panic::{PanicHookInfo, UnwindSafe};

thread_local! {
    /// Whether this thread is inside [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// ` (at file:line)` of the last panic the hook saw on this thread.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The panic hook of the mqctl binary: see the module documentation.
pub fn hook(info: &PanicHookInfo<'_>) {
    let at = info
        .location()
        .map(|l| format!(" (at {}:{})", l.file(), l.line()))
        .unwrap_or_default();
    if CATCHING.get() {
        LOCATION.set(Some(at));
    } else {
        let msg = message(info.payload());
        eprintln!(
            "mqctl: internal error: {}{at}",
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
}

/// Runs `f`; a panic becomes `Err` with its message, and where it happened
/// when [`hook`] is installed.
pub(crate) fn catch<R>(f: impl FnOnce() -> R + UnwindSafe) -> Result<R, String> {
    let was = CATCHING.replace(true);
    let outcome = std::panic::catch_unwind(f);
    CATCHING.set(was);
    outcome.map_err(|payload| {
        let at = LOCATION.take().unwrap_or_default();
        format!("{}{at}", message(&*payload))
    })
}

/// The text a panic was raised with.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| panic!("broken {}", "invariant")),
            Err::<(), _>("broken invariant".into())
        );
        assert!(!CATCHING.get(), "reset after the catch");
    }
}
