//! `make install` of this build (`NO_BUILD=1 BUILT=target/<profile>`: a test runs no
//! cargo; `make test` builds libmq and mqctl first) into a temporary
//! DESTDIR, then the installed files alone:
//! the C example producer built with `pkg-config --cflags --libs mq` and
//! nothing from the source tree but its own .c file, run (through the
//! installed `libmq.so.1`) against the installed `mqd`; the units rewritten
//! for the PREFIX; `--help` of both binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::libmq::fresh;
use crate::support::*;

/// The repository.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails naming `tool` when it is missing.
fn require(tool: &str, why: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(found.is_ok(), "missing tool: {tool} ({why})");
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn make_install_gives_what_a_c_program_and_systemd_need() {
    require("make", "runs the install");
    require("pkg-config", "finds libmq's flags from the installed mq.pc");
    require("cc", "builds the C example");
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_mqd"))
        .parent()
        .expect("mqd is in target/<profile>/");
    fresh::fresh_library(profile_dir, &root().join("ffi"));
    for built in ["libmq.a", "mqctl"] {
        assert!(
            profile_dir.join(built).is_file(),
            "{} is missing: run `cargo build -p mq-capi -p mqctl` before the tests (`make test` does)",
            profile_dir.join(built).display()
        );
    }
    let dir = TempDir::new("install").keep_on_failure();
    let dest = dir.path().join("dest");
    let prefix = "/opt/mq";
    run(Command::new("make")
        .current_dir(root())
        .args(["install", "NO_BUILD=1", &format!("PREFIX={prefix}")])
        .arg(format!("BUILT={}", profile_dir.display()))
        .arg(format!("DESTDIR={}", dest.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL"));
    let staged = dest.join("opt/mq");

    // The library under its soname, with the link -lmq finds.
    let lib = staged.join("lib");
    assert_eq!(
        std::fs::read_link(lib.join("libmq.so")).expect("libmq.so is a link"),
        Path::new("libmq.so.1")
    );
    assert!(std::fs::read_link(lib.join("libmq.so.1")).is_ok());
    for file in [
        "lib/libmq.so.1.0.0",
        "lib/libmq.a",
        "include/mq.h",
        "lib/pkgconfig/mq.pc",
        "bin/mqd",
        "bin/mqctl",
        "lib/sysusers.d/mq.conf",
        "share/mq/examples/namesrv.conf",
        "share/mq/examples/broker-a.conf",
        "share/mq/examples/broker-b-master.conf",
        "share/mq/examples/broker-b-slave.conf",
    ] {
        assert!(staged.join(file).is_file(), "{file} was not installed");
    }
    for unit in ["mq-namesrv.service", "mq-broker@.service"] {
        let text = std::fs::read_to_string(staged.join("lib/systemd/system").join(unit))
            .unwrap_or_else(|e| panic!("{unit} was not installed: {e}"));
        assert!(
            text.contains(&format!("ExecStart={prefix}/bin/mqd ")),
            "{unit} does not run the installed mqd:\n{text}"
        );
    }

    // The C example, from the installed header and library alone.
    let pkg_config = |args: &[&str]| {
        let out = run(Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .env("PKG_CONFIG_SYSROOT_DIR", &dest)
            .env_remove("PKG_CONFIG_LIBDIR"));
        String::from_utf8(out.stdout).expect("UTF-8 flags")
    };
    assert_eq!(
        pkg_config(&["--modversion", "mq"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let flags = pkg_config(&["--cflags", "--libs", "mq"]);
    assert!(flags.contains(&format!("-I{}", staged.join("include").display())));
    let program = dir.path().join("producer");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&program)
        .arg(root().join("bindings/c/producer.c"))
        .args(flags.split_whitespace()));

    // Run it against the installed mqd, finding libmq.so.1 where it was put.
    let namesrv_port = free_port();
    let broker_port = free_broker_port();
    let log = dir.path().join("mqd.log");
    let out = std::fs::File::create(&log).expect("create the log");
    let mut mqd = Command::new(staged.join("bin/mqd"))
        .args(["standalone", "--data"])
        .arg(dir.path().join("data"))
        .args(["--namesrv-listen", &local(namesrv_port).to_string()])
        .args(["--listen-port", &broker_port.to_string()])
        .args(
            SMALL_STORE
                .iter()
                .flat_map(|(k, v)| [format!("--{k}"), (*v).to_owned()]),
        )
        .env_remove("NOTIFY_SOCKET")
        .stdout(out.try_clone().expect("clone the log"))
        .stderr(out)
        .spawn()
        .expect("start the installed mqd");
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in [local(namesrv_port), local(broker_port)] {
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || mqd.try_wait().ok().flatten().is_some() {
                let _ = mqd.kill();
                panic!(
                    "the installed mqd is not listening on {addr}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let sent = Command::new(&program)
        .args(["-n", &local(namesrv_port).to_string(), "-t", "InstallTest"])
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("run the producer");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mqd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = mqd.wait();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.contains("producer: sent"),
        "the installed producer failed ({}):\n{stdout}{}",
        sent.status,
        String::from_utf8_lossy(&sent.stderr)
    );

    // Both binaries explain themselves.
    for bin in ["mqd", "mqctl"] {
        let help = run(Command::new(staged.join("bin").join(bin)).arg("--help"));
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.starts_with("Usage: "), "{bin} --help:\n{text}");
    }

    // `make uninstall` takes every file back.
    run(Command::new("make")
        .current_dir(root())
        .args(["uninstall", &format!("PREFIX={prefix}")])
        .arg(format!("DESTDIR={}", dest.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL"));
    let left: Vec<PathBuf> = files_under(&dest);
    assert!(left.is_empty(), "left after make uninstall: {left:?}");
}

/// Every file and link under `dir`, directories not counted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => files_under(&path),
                _ => vec![path],
            }
        })
        .collect()
}
