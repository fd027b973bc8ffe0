//! `include/mq.h`: equal byte for byte to what cbindgen renders from the
//! sources now (`MQ_BLESS=1` rewrites it instead), compilable as C99 and as
//! C++11 with warnings as errors, and its version macros equal to the
//! package version. Needs no build of libmq: cbindgen reads the sources.
//!
//! cbindgen is a pinned tool, not a dependency: as a dev-dependency it would
//! put seventeen packages into Cargo.lock for one test. `make tools` installs
//! exactly [`CBINDGEN_VERSION`] under `target/tools` (the test command does it
//! first); `CBINDGEN` may name another binary of that version.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../../include/mq.h")
}

/// The one cbindgen whose output the checked-in header is: point releases
/// change spacing and order, so the comparison is with this version only.
const CBINDGEN_VERSION: &str = "0.29.4";

/// The pinned cbindgen: `$CBINDGEN`, else `target/tools/bin/cbindgen`.
fn cbindgen() -> PathBuf {
    let path = std::env::var_os("CBINDGEN").map_or_else(
        || crate_dir().join("../../target/tools/bin/cbindgen"),
        PathBuf::from,
    );
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    match version {
        Some(v) if v == format!("cbindgen {CBINDGEN_VERSION}") => path,
        found => panic!(
            "cbindgen {CBINDGEN_VERSION} is needed at {} (found: {found:?}); \
             install it with `make tools` (cargo install --locked --root target/tools \
             cbindgen --version {CBINDGEN_VERSION})",
            path.display()
        ),
    }
}

/// The header as cbindgen renders it from `src/` with `cbindgen.toml`.
fn render() -> String {
    let out = Command::new(cbindgen())
        .arg("--config")
        .arg(crate_dir().join("cbindgen.toml"))
        .arg(crate_dir().join("src/lib.rs"))
        .output()
        .expect("run cbindgen");
    assert!(
        out.status.success(),
        "cbindgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the header is UTF-8")
}

#[test]
fn the_checked_in_header_is_a_fresh_rendering() {
    let fresh = render();
    let path = header_path();
    if std::env::var_os("MQ_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/mq.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != fresh {
        let line = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "include/mq.h differs from what cbindgen renders now (first at {line}); \
             run `MQ_BLESS=1 cargo test -p mq-capi --test header` and commit it"
        );
    }
}

fn compile(compiler: &str, args: &[&str]) {
    let status = Command::new(compiler)
        .args(args)
        .arg(header_path())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        status.success(),
        "{compiler} {} mq.h failed",
        args.join(" ")
    );
}

#[test]
fn the_header_compiles_as_c99() {
    compile(
        "cc",
        &[
            "-x",
            "c",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
        ],
    );
}

#[test]
fn the_header_compiles_as_cxx11() {
    compile(
        "c++",
        &[
            "-x",
            "c++",
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
        ],
    );
}

#[test]
fn version_macros_equal_the_package_version() {
    let header = std::fs::read_to_string(header_path()).expect("read include/mq.h");
    let value = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        header
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("mq.h has no {name}"))
            .trim()
            .to_owned()
    };
    let version = format!(
        "{}.{}.{}",
        value("MQ_VERSION_MAJOR"),
        value("MQ_VERSION_MINOR"),
        value("MQ_VERSION_PATCH")
    );
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(value("MQ_ABI_VERSION"), "1", "the soname is libmq.so.1");
}
