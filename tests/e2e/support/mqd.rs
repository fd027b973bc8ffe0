//! `mqd` processes, always the `mqd` of this build (`CARGO_BIN_EXE_mqd`):
//! how to start one ([`MqdCommand`]), the running process ([`Mqd`]: ready when
//! its ports accept connections, stopped with SIGTERM, restarted, its log
//! printed when a test fails), and the `mqd standalone` most client tests
//! want ([`Standalone`]).

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mq::connection::RemotingClient;
use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::SerializeType;

use super::ports::{free_broker_port, free_port};
use super::remoting::{eventually, request, TIMEOUT};
use super::tempdir::TempDir;

/// Store files small enough that tests cross segment boundaries and many
/// brokers fit on a disk: 1 MiB CommitLog segments, 300-entry ConsumeQueue
/// files, a small index. As broker.conf keys and values.
pub const SMALL_STORE: [(&str, &str); 4] = [
    ("mappedFileSizeCommitLog", "1048576"),
    ("mappedFileSizeConsumeQueue", "6000"),
    ("maxIndexNum", "2000"),
    ("maxHashSlotNum", "500"),
];

/// How long a daemon may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of its log a daemon prints when a test fails.
const LOG_TAIL: usize = 400;

/// `settings` as `--key value` arguments.
pub fn flags(settings: &[(&str, &str)]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), (*v).to_owned()])
        .collect()
}

/// How to run one `mqd` process.
#[derive(Debug, Clone)]
pub struct MqdCommand {
    /// What messages call it (`mqd standalone`, `mqd broker`).
    pub name: String,
    /// The arguments, subcommand first.
    pub args: Vec<String>,
    /// Where its stdout and stderr go, appended across restarts.
    pub log: PathBuf,
    /// Addresses that must accept connections before it counts as ready.
    pub ready: Vec<SocketAddr>,
    /// RLIMIT_NOFILE, set as both the soft and the hard limit so that mqd's
    /// raise to the hard limit cannot escape it.
    pub nofile: Option<u64>,
    /// The network namespace to run in (`ip netns exec`, which execs mqd
    /// in the same process).
    pub netns: Option<String>,
    /// `RUST_LOG` for the process (default: the test's own, else info).
    pub rust_log: Option<String>,
}

/// A loopback address.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl MqdCommand {
    /// `mqd <args>`, logging to `log`, ready at once.
    pub fn new(name: &str, args: &[&str], log: &Path) -> MqdCommand {
        MqdCommand {
            name: name.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            log: log.to_owned(),
            ready: Vec::new(),
            nofile: None,
            netns: None,
            rust_log: None,
        }
    }

    /// `mqd standalone` with its data in `data`, the NameServer on
    /// `namesrv_port` and the broker on `listen_port` (and the VIP port
    /// below it), ready when all three accept connections.
    pub fn standalone(data: &Path, namesrv_port: u16, listen_port: u16, log: &Path) -> MqdCommand {
        let data = data.display().to_string();
        let namesrv = local(namesrv_port).to_string();
        let port = listen_port.to_string();
        MqdCommand::new(
            "mqd standalone",
            &[
                "standalone",
                "--data",
                &data,
                "--namesrv-listen",
                &namesrv,
                "--listen-port",
                &port,
            ],
            log,
        )
        .ready_at(local(namesrv_port))
        .ready_at(local(listen_port))
        .ready_at(local(listen_port - 2))
    }

    /// More arguments; a broker.conf key given twice takes the last value.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> MqdCommand {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// One more address that must accept connections.
    pub fn ready_at(mut self, addr: SocketAddr) -> MqdCommand {
        self.ready.push(addr);
        self
    }

    /// Runs in the network namespace `name`.
    pub fn netns(mut self, name: &str) -> MqdCommand {
        self.netns = Some(name.to_owned());
        self
    }

    /// Runs with this `RUST_LOG`.
    pub fn rust_log(mut self, filter: &str) -> MqdCommand {
        self.rust_log = Some(filter.to_owned());
        self
    }

    /// Runs under this RLIMIT_NOFILE.
    pub fn nofile(mut self, limit: u64) -> MqdCommand {
        self.nofile = Some(limit);
        self
    }

    /// Starts the process and waits until it is ready.
    pub fn start(self) -> Mqd {
        let mut mqd = Mqd {
            command: self,
            child: None,
        };
        mqd.spawn();
        mqd
    }
}

/// A running `mqd`. Dropped: SIGTERM, SIGKILL after a deadline, and the end
/// of its log on stderr if the test is failing.
pub struct Mqd {
    command: MqdCommand,
    child: Option<Child>,
}

impl Mqd {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.command.name);
        let cmd = &self.command;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cmd.log)
            .expect("open the mqd log");
        let mut process = match (cmd.nofile, &cmd.netns) {
            // The shell's `ulimit -n` sets both limits, then execs mqd in the
            // same process, so the child's pid is mqd's.
            (Some(limit), None) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"ulimit -n "$0" && exec "$@""#])
                    .arg(limit.to_string())
                    .arg(env!("CARGO_BIN_EXE_mqd"));
                sh
            }
            (None, Some(netns)) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", netns])
                    .arg(env!("CARGO_BIN_EXE_mqd"));
                ip
            }
            (None, None) => Command::new(env!("CARGO_BIN_EXE_mqd")),
            (Some(_), Some(_)) => panic!("{}: nofile and netns together", cmd.name),
        };
        let child = process
            .args(&cmd.args)
            .env(
                "RUST_LOG",
                cmd.rust_log
                    .clone()
                    .or_else(|| std::env::var("RUST_LOG").ok())
                    .unwrap_or_else(|| "info".into()),
            )
            // Should the tests run under systemd, mqd must not talk to it.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mqd {}: {e}", cmd.args.join(" ")));
        eprintln!(
            "[e2e] started {} (pid {}): mqd {}",
            cmd.name,
            child.id(),
            cmd.args.join(" ")
        );
        self.child = Some(child);
        self.wait_ready();
    }

    /// Polls the ready addresses until they all accept, failing early if mqd
    /// exits.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for addr in self.command.ready.clone() {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    panic!(
                        "{} exited ({status}) before listening on {addr}",
                        self.command.name
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{} is not listening on {addr} after {READY_TIMEOUT:?}",
                    self.command.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mqd is running").id()
    }

    /// SIGKILL and wait: the process dies at whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("[e2e] killed {} (SIGKILL)", self.command.name);
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the running process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal mqd");
        eprintln!("[e2e] sent {signal:?} to {}", self.command.name);
    }

    /// Starts the same command again after [`kill`](Self::kill) or
    /// [`stop`](Self::stop), and waits until it is ready.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// SIGTERM and wait; the exit status, or `None` if it had to be killed.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // A process a test froze (SIGSTOP) would not act on SIGTERM.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// SIGTERM, and the exit status, which must come within the deadline.
    pub fn terminate(&mut self) -> ExitStatus {
        let name = self.command.name.clone();
        self.stop().unwrap_or_else(|| {
            panic!(
                "{name} did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log_text()
            )
        })
    }

    /// A clean restart: SIGTERM must make mqd exit 0; then the same command
    /// again.
    pub fn restart(&mut self) {
        let started = Instant::now();
        let status = self.terminate();
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM (expected 0)",
            self.command.name
        );
        eprintln!(
            "[e2e] {} stopped cleanly in {:.1?}",
            self.command.name,
            started.elapsed()
        );
        self.spawn();
        eprintln!(
            "[e2e] {} restarted in {:.1?}",
            self.command.name,
            started.elapsed()
        );
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.command.log).unwrap_or_default()
    }
}

impl Drop for Mqd {
    fn drop(&mut self) {
        let status = self.stop();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL);
            eprintln!(
                "===== {} log ({}; last {} of {} lines; exit {status:?}) =====",
                self.command.name,
                self.command.log.display(),
                lines.len() - from,
                lines.len(),
            );
            for line in &lines[from..] {
                eprintln!("{line}");
            }
            eprintln!("===== end of {} log =====", self.command.name);
        }
    }
}

/// `mqd standalone` on free loopback ports in a temporary directory, once
/// its broker has registered with its NameServer (a route for TBW102
/// exists), so that clients find it at once.
pub struct Standalone {
    /// The process; stopped before the directory goes.
    _mqd: Mqd,
    /// The NameServer address.
    pub namesrv: String,
    /// The broker's main address.
    pub broker_addr: String,
    dir: TempDir,
}

impl Standalone {
    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self._mqd.pid()
    }

    /// With 64 MiB CommitLog segments and a mid-sized index.
    pub fn start() -> Standalone {
        Standalone::start_with(&[])
    }

    /// [`start`](Self::start) with extra broker.conf keys (`--key value`).
    pub fn start_with(extra: &[&str]) -> Standalone {
        let dir = TempDir::new("standalone");
        let (ns_port, port) = (free_port(), free_broker_port());
        let mqd = MqdCommand::standalone(
            &dir.path().join("data"),
            ns_port,
            port,
            &dir.path().join("mqd.log"),
        )
        .args([
            "--mappedFileSizeCommitLog",
            "67108864",
            "--maxIndexNum",
            "100000",
            "--maxHashSlotNum",
            "10000",
        ])
        .args(extra)
        .start();
        let namesrv = local(ns_port).to_string();
        async_io::block_on(wait_registered(&namesrv));
        Standalone {
            _mqd: mqd,
            namesrv,
            broker_addr: local(port).to_string(),
            dir,
        }
    }

    /// The daemon's `--data` directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Waits (up to 20 s) until the NameServer at `namesrv` has a route for
/// TBW102: a broker has registered.
pub async fn wait_registered(namesrv: &str) {
    let client = RemotingClient::connect(namesrv, TIMEOUT, None)
        .await
        .unwrap_or_else(|e| panic!("connect to {namesrv}: {e}"));
    eventually(
        "the broker to register",
        Duration::from_secs(20),
        || async {
            let probe = request(
                req::GET_ROUTEINFO_BY_TOPIC,
                SerializeType::Json,
                &[("topic", "TBW102")],
            );
            let answer = client.invoke(probe, TIMEOUT).await.ok()?;
            (answer.code == resp::SUCCESS).then_some(())
        },
    )
    .await
}
