//! `libmq.so` exports exactly the functions `include/mq.h` declares, and its
//! soname is `libmq.so.1`.
//!
//! Cargo builds no cdylib for a `cargo test` of its own package, and a test
//! must not run cargo itself; so `make test` runs `cargo build -p mq-capi`
//! first, and this test reads the `libmq.so` beside its own `deps/`
//! directory. It fails, naming that command, when the library is missing
//! or older than any source it is built from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const BUILD: &str = "cargo build -p mq-capi";

/// `target/<profile>/libmq.so` of this build.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/symbols-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    profile_dir.join("libmq.so")
}

/// The newest modification time under `dir` (files ending in `.rs` or
/// `.toml`).
fn newest(dir: &Path) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return latest;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest(&path)
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            SystemTime::UNIX_EPOCH
        };
        latest = latest.max(t);
    }
    latest
}

/// The built library, checked to be there and newer than its sources.
fn fresh_library() -> PathBuf {
    let lib = library();
    let built = std::fs::metadata(&lib)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `{BUILD}` before the tests (`make test` does)",
                lib.display()
            )
        });
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        "capi/src",
        "capi/Cargo.toml",
        "capi/build.rs",
        "client/src",
        "protocol/src",
    ]
    .iter()
    .map(|p| {
        let p = ffi.join(p);
        if p.is_dir() {
            newest(&p)
        } else {
            std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    })
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    assert!(
        built >= sources,
        "{} is older than its sources: run `{BUILD}` before the tests (`make test` does)",
        lib.display()
    );
    lib
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
