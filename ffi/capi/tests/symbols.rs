//! `libmq.so` exports exactly the functions `include/mq.h` declares, and its
//! soname is `libmq.so.1`.
//!
//! It needs `libmq.so` built: see `support/fresh_library.rs` for how it
//! finds it and why it fails (naming `cargo build -p mq-capi`) rather than
//! build it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/fresh_library.rs"]
mod support;

/// `libmq.so` of this build (`target/<profile>/`, beside the tests'
/// `deps/`), fresh.
fn fresh_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    support::fresh_library(profile_dir, &ffi)
}

fn run(cmd: &str, args: &[&str], lib: &Path) -> String {
    let out = Command::new(cmd)
        .args(args)
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The functions `mq.h` declares: every `mq_name(` outside comments.
fn declared() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include/mq.h");
    let header = std::fs::read_to_string(path).expect("read include/mq.h");
    let mut code = String::new();
    let mut rest = header.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("mq_") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if code[i + name.len()..].trim_start().starts_with('(') {
            names.insert(name);
        }
    }
    names
}

#[test]
fn libmq_exports_exactly_the_functions_of_the_header() {
    let lib = fresh_library();
    let lib_s = lib.to_string_lossy().into_owned();
    let nm = run("nm", &["-D", "--defined-only"], &lib);
    let exported: BTreeSet<String> = nm
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (_, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            // Functions (T); data symbols the linker adds (_end, ...) are
            // not ours, but any data symbol of ours would be a leak too.
            (kind == "T" || kind.eq_ignore_ascii_case("d") || kind.eq_ignore_ascii_case("b"))
                .then(|| name.split('@').next().unwrap_or(name).to_owned())
        })
        .collect();
    let declared = declared();
    assert!(
        declared.len() > 50,
        "mq.h declares {} functions",
        declared.len()
    );
    let missing: Vec<_> = declared.difference(&exported).collect();
    let extra: Vec<_> = exported.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{lib_s}: declared in mq.h but not exported: {missing:?}; exported but not declared: {extra:?}"
    );
}

#[test]
fn libmq_has_the_soname_libmq_so_1() {
    let lib = fresh_library();
    let dynamic = run("readelf", &["-d"], &lib);
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(SONAME)") && l.contains("[libmq.so.1]")),
        "no SONAME libmq.so.1 in:\n{dynamic}"
    );
}
