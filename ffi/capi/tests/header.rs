//! `include/mq.h`: equal byte for byte to what cbindgen renders from the
//! sources now (`MQ_BLESS=1` rewrites it instead), compilable as C99 and as
//! C++11 with warnings as errors, and its version macros equal to the
//! package version. Needs no build of libmq: cbindgen reads the sources.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../../include/mq.h")
}

/// The header as cbindgen renders it from `src/` with `cbindgen.toml`.
fn render() -> String {
    let config =
        cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir().join("src/lib.rs"))
        .generate()
        .expect("cbindgen renders the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
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
