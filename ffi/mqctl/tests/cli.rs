//! The `mqctl` binary itself, as a process: that `main` wires the library to
//! the real arguments, environment, standard streams and exit code. What the
//! verbs do against a daemon is proven in-process by the end-to-end tests
//! (`tests/e2e/mqctl.rs`); these need no daemon.

use std::process::{Command, Output, Stdio};

/// Runs the freshly built mqctl with `args`, without NAMESRV_ADDR unless given.
fn mqctl(args: &[&str], namesrv_env: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqctl"));
    cmd.args(args)
        .env_remove("NAMESRV_ADDR")
        .stdin(Stdio::null());
    if let Some(addr) = namesrv_env {
        cmd.env("NAMESRV_ADDR", addr);
    }
    cmd.output().expect("run mqctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback address where nothing listens.
fn nowhere() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    addr.to_string()
}

/// Exit `code` and exactly one `mqctl: ` line on stderr, containing `what`.
fn assert_one_error_line(out: &Output, code: i32, what: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    assert!(lines[0].starts_with("mqctl: "), "{stderr}");
    assert!(lines[0].contains(what), "{what:?} in {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    let out = mqctl(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Error codes"), "{stdout}");
    assert!(stdout.contains("2 usage error"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_bad_flag_exits_2_with_one_line() {
    assert_one_error_line(&mqctl(&["topic", "list", "--bogus"], None), 2, "--bogus");
}

#[test]
fn an_unreachable_nameserver_exits_1_with_one_line() {
    let addr = nowhere();
    assert_one_error_line(
        &mqctl(&["--namesrv", &addr, "topic", "list"], None),
        1,
        &addr,
    );
    // The environment reaches the library too.
    assert_one_error_line(&mqctl(&["cluster"], Some(&addr)), 1, &addr);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqctl"))
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mqctl");
    // Whether mqctl writes before or after the reader is gone, it succeeds
    // quietly.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for mqctl");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}
