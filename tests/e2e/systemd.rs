//! The systemd units of `systemd/` as systemd would run them: each unit's
//! `ExecStart` line (this build's `mqd` in place of `/usr/local/bin/mqd`, a
//! temp directory in place of `/etc/mq`, the example configurations with
//! loopback ports appended) under a fake `NOTIFY_SOCKET`. `READY=1` must come
//! only once every port accepts, `WATCHDOG=1` while it serves, `STOPPING=1`
//! on SIGTERM; and `systemd-analyze verify` must find nothing to say about
//! the units.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The repository's `systemd/` directory.
fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// Where the units expect `mqd`.
const INSTALLED_MQD: &str = "/usr/local/bin/mqd";

/// A unit's `ExecStart` command line, as systemd would run it for `instance`
/// with this build's `mqd` and `/etc/mq` moved to `etc`.
fn exec_start(unit: &str, instance: &str, etc: &Path) -> Vec<String> {
    let path = units_dir().join(unit);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit} has no ExecStart line"));
    line.split_whitespace()
        .map(|word| {
            word.replace(INSTALLED_MQD, env!("CARGO_BIN_EXE_mqd"))
                .replace("/etc/mq", &etc.display().to_string())
                .replace("%i", instance)
        })
        .collect()
}

/// An example configuration with `extra` lines appended (a repeated key's
/// last value wins), written to `etc/name`.
fn write_config(etc: &Path, name: &str, extra: &[(&str, String)]) {
    let example = units_dir().join("examples").join(name);
    let mut text = std::fs::read_to_string(&example)
        .unwrap_or_else(|e| panic!("read {}: {e}", example.display()));
    text.push_str("\n# the test's\n");
    for (k, v) in extra {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(etc.join(name), text).expect("write the configuration");
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    /// The value of `NOTIFY_SOCKET`.
    env: String,
}

impl NotifySocket {
    /// A socket at a path in `dir`.
    fn at_path(dir: &Path) -> NotifySocket {
        std::fs::create_dir_all(dir).expect("mkdir for the notify socket");
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            env: path.display().to_string(),
        }
    }

    /// A socket in the abstract namespace (`@name`).
    fn abstract_named(name: &str) -> NotifySocket {
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifySocket {
            socket,
            env: format!("@{name}"),
        }
    }

    /// The next message, waiting up to `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Waits for a message holding the line `state`; the messages before it,
    /// and it.
    /// A process that exits may have sent it just before: the socket is
    /// read before the exit counts.
    fn wait_for(
        &self,
        state: &str,
        within: Duration,
        child: &mut Child,
        log: &Path,
    ) -> (Vec<String>, String) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let exited = child.try_wait().ok().flatten();
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if exited.is_some() {
                Duration::from_millis(1)
            } else {
                left.min(Duration::from_millis(200))
            };
            match self.next(wait.max(Duration::from_millis(1))) {
                Some(message) if message.lines().any(|l| l == state) => return (seen, message),
                Some(message) => seen.push(message),
                None => {
                    if let Some(status) = exited {
                        panic!(
                            "mqd exited ({status}) before {state}; got {seen:?}; log:\n{}",
                            std::fs::read_to_string(log).unwrap_or_default()
                        );
                    }
                    assert!(
                        !left.is_zero(),
                        "no {state} within {within:?}; got {seen:?}; log:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
    }
}

/// A unit's command, started with `notify` as its NOTIFY_SOCKET and a 2 s
/// watchdog, the way systemd sets the two variables.
fn spawn_unit(argv: &[String], notify: &NotifySocket, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("create the log");
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env("NOTIFY_SOCKET", &notify.env)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone the log"))
        .stderr(out);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", argv.join(" ")));
    eprintln!("[e2e] started (pid {}): {}", child.id(), argv.join(" "));
    child
}

/// SIGTERM: `STOPPING=1` must arrive, and mqd must exit 0.
fn stop_unit(mut child: Child, notify: &NotifySocket, log: &Path) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    notify.wait_for("STOPPING=1", Duration::from_secs(10), &mut child, log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mqd") {
            break status;
        }
        assert!(Instant::now() < deadline, "mqd did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "mqd exited with {status} after SIGTERM");
}

/// Whether every address accepts a connection right now.
fn all_accept(addrs: &[std::net::SocketAddr]) -> Result<(), String> {
    for addr in addrs {
        std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1))
            .map_err(|e| format!("{addr}: {e}"))?;
    }
    Ok(())
}

/// Kills a child a failing test left running.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl KillOnDrop {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("running")
    }
}

#[test]
fn the_units_exec_start_lines_notify_ready_watchdog_and_stopping() {
    let dir = TempDir::new("systemd-units").keep_on_failure();
    let etc = dir.path().join("etc-mq");
    std::fs::create_dir_all(&etc).expect("mkdir etc");

    // The NameServer, its socket in the abstract namespace.
    let namesrv_port = free_port();
    write_config(
        &etc,
        "namesrv.conf",
        &[
            ("listenIP", "127.0.0.1".into()),
            ("listenPort", namesrv_port.to_string()),
        ],
    );
    let ns_notify =
        NotifySocket::abstract_named(&format!("mq-e2e-notify-{}-ns", std::process::id()));
    let ns_log = dir.path().join("namesrv.log");
    let argv = exec_start("mq-namesrv.service", "", &etc);
    let mut namesrv = KillOnDrop(Some(spawn_unit(&argv, &ns_notify, &ns_log)));
    ns_notify.wait_for("READY=1", Duration::from_secs(30), namesrv.child(), &ns_log);
    all_accept(&[local(namesrv_port)]).expect("the NameServer accepts once READY=1 came");

    // A broker, instance "a", its socket a path.
    let port = free_broker_port();
    let extra = broker_keys(dir.path(), "a", port, namesrv_port);
    write_config(&etc, "broker-a.conf", &extra);
    let broker_notify = NotifySocket::at_path(dir.path());
    let broker_log = dir.path().join("broker-a.log");
    let argv = exec_start("mq-broker@.service", "a", &etc);
    assert!(
        argv.iter().any(|a| a.ends_with("/broker-a.conf")),
        "the instance name picks the file: {argv:?}"
    );
    let mut broker = KillOnDrop(Some(spawn_unit(&argv, &broker_notify, &broker_log)));
    let (before, ready) = broker_notify.wait_for(
        "READY=1",
        Duration::from_secs(60),
        broker.child(),
        &broker_log,
    );
    assert!(before.is_empty(), "messages before READY=1: {before:?}");
    assert!(
        ready.contains(&format!(
            "\nSTATUS=broker broker-a (ASYNC_MASTER) listening on 127.0.0.1:{port}"
        )),
        "{ready:?}"
    );
    all_accept(&[local(port), local(port - 2), local(port + 1)])
        .expect("the broker's main, VIP and HA ports accept once READY=1 came");

    // The watchdog (2 s, so a ping every second) is fed while both serve.
    for _ in 0..2 {
        broker_notify.wait_for(
            "WATCHDOG=1",
            Duration::from_secs(5),
            broker.child(),
            &broker_log,
        );
        ns_notify.wait_for(
            "WATCHDOG=1",
            Duration::from_secs(5),
            namesrv.child(),
            &ns_log,
        );
    }

    stop_unit(broker.take(), &broker_notify, &broker_log);
    stop_unit(namesrv.take(), &ns_notify, &ns_log);
}

/// The broker.conf keys that put a broker on `port` in `dir`, registered
/// with the NameServer on `namesrv_port`.
fn broker_keys(
    dir: &Path,
    name: &str,
    port: u16,
    namesrv_port: u16,
) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("namesrvAddr", local(namesrv_port).to_string()),
        ("listenIP", "127.0.0.1".into()),
        ("listenPort", port.to_string()),
        ("haListenPort", (port + 1).to_string()),
        (
            "storePathRootDir",
            dir.join(format!("store-{name}")).display().to_string(),
        ),
    ];
    keys.extend(SMALL_STORE.iter().map(|(k, v)| (*k, (*v).to_owned())));
    keys
}

#[test]
fn the_example_sync_master_and_slave_run_as_unit_instances_and_link() {
    let dir = TempDir::new("systemd-pair").keep_on_failure();
    let etc = dir.path().join("etc-mq");
    std::fs::create_dir_all(&etc).expect("mkdir etc");
    let namesrv_port = free_port();
    write_config(
        &etc,
        "namesrv.conf",
        &[
            ("listenIP", "127.0.0.1".into()),
            ("listenPort", namesrv_port.to_string()),
        ],
    );
    let ns_notify = NotifySocket::at_path(&dir.path().join("ns"));
    let ns_log = dir.path().join("namesrv.log");
    let mut namesrv = KillOnDrop(Some(spawn_unit(
        &exec_start("mq-namesrv.service", "", &etc),
        &ns_notify,
        &ns_log,
    )));
    ns_notify.wait_for("READY=1", Duration::from_secs(30), namesrv.child(), &ns_log);

    let mut brokers = Vec::new();
    for instance in ["b-master", "b-slave"] {
        let port = free_broker_port();
        let file = format!("broker-{instance}.conf");
        write_config(
            &etc,
            &file,
            &broker_keys(dir.path(), instance, port, namesrv_port),
        );
        let notify = NotifySocket::at_path(&dir.path().join(instance));
        let log = dir.path().join(format!("{instance}.log"));
        let mut child = KillOnDrop(Some(spawn_unit(
            &exec_start("mq-broker@.service", instance, &etc),
            &notify,
            &log,
        )));
        notify.wait_for("READY=1", Duration::from_secs(60), child.child(), &log);
        all_accept(&[local(port), local(port - 2)]).expect("the broker accepts after READY=1");
        // A slave learns its master from the answer to its registration:
        // once the master is registered, the slave's first one finds it
        // (else the next, registerNameServerPeriod later).
        async_io::block_on(wait_registered(&local(namesrv_port).to_string()));
        brokers.push((child, notify, log, local(port).to_string()));
    }
    async_io::block_on(wait_linked(
        "the example slave to link to the example SYNC_MASTER",
        &brokers[0].3,
        &brokers[1].3,
    ));
    for (child, notify, log, _) in brokers.into_iter().rev() {
        stop_unit(child.take(), &notify, &log);
    }
    stop_unit(namesrv.take(), &ns_notify, &ns_log);
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let tool = "systemd-analyze";
    let found = Command::new(tool).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "missing tool: {tool} (apt-get install systemd) is needed to verify the units"
    );
    // verify wants the ExecStart binary to exist, and an instance of a template.
    let dir = TempDir::new("systemd-verify");
    let mut units = Vec::new();
    for (unit, name) in [
        ("mq-namesrv.service", "mq-namesrv.service"),
        ("mq-broker@.service", "mq-broker@a.service"),
    ] {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read the unit");
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            text.replace(INSTALLED_MQD, env!("CARGO_BIN_EXE_mqd")),
        )
        .expect("write the unit");
        units.push(path);
    }
    let out = Command::new(tool)
        .arg("verify")
        .args(&units)
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify says:\n{said}"
    );
}
