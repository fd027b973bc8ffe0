//! Finding the `libmq.so` of this build, and refusing a stale one.
//!
//! Cargo builds no cdylib for a test run (tests link rlibs), and a test must
//! not run cargo itself; so `make test` runs `cargo build -p mq-capi` before
//! the tests, and a test that needs the library reads it from its profile
//! directory (`target/<profile>/`) and fails, naming that command, when it
//! is missing or older than any source it is built from. Shared by
//! `ffi/capi/tests/symbols.rs` and `tests/e2e/capi.rs` (through `#[path]`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The command that builds the library.
pub const BUILD: &str = "cargo build -p mq-capi";

/// The newest modification time of the `.rs` and `.toml` files at or under
/// `path`.
fn newest(path: &Path) -> SystemTime {
    let own = || {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    if !path.is_dir() {
        return if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            own()
        } else {
            SystemTime::UNIX_EPOCH
        };
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| newest(&e.path()))
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH)
        })
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `libmq.so` in `profile_dir`, checked to exist and to be newer than the
/// sources under `ffi_dir` (`ffi/`) it is built from.
pub fn fresh_library(profile_dir: &Path, ffi_dir: &Path) -> PathBuf {
    let lib = profile_dir.join("libmq.so");
    let built = std::fs::metadata(&lib)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `{BUILD}` before the tests (`make test` does)",
                lib.display()
            )
        });
    let sources = [
        "capi/src",
        "capi/Cargo.toml",
        "capi/build.rs",
        "client/src",
        "client/Cargo.toml",
        "protocol/src",
    ]
    .iter()
    .map(|p| newest(&ffi_dir.join(p)))
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    assert!(
        built >= sources,
        "{} is older than its sources: run `{BUILD}` before the tests (`make test` does)",
        lib.display()
    );
    lib
}
