//! `mqd`: the mq daemon — a NameServer, a Broker, or both in one process.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the daemon
//! fails, 2 for a usage or configuration error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;
use async_executor::Executor;
use nix::sys::signal::{SigSet, Signal};

use mq_daemon::broker::{Broker, BrokerConfig};
use mq_daemon::descriptors;
use mq_daemon::namesrv::{self, NamesrvConfig};
use mq_daemon::shutdown::Shutdown;

/// Every request allocates (header maps, JSON, bodies) on worker threads
/// that free each other's memory; glibc's malloc spent about a quarter of
/// the broker's CPU on its arena locks under load (perf), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mq daemon: RocketMQ-compatible NameServer and Broker.
#[derive(FromArgs)]
struct Mqd {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Namesrv(NamesrvCmd),
    Broker(BrokerCmd),
    Standalone(StandaloneCmd),
}

/// run a NameServer
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "namesrv",
    example = "{command_name} --listen 127.0.0.1:9876"
)]
struct NamesrvCmd {
    /// address to listen on (default 127.0.0.1:9876)
    #[argh(option, default = "String::from(\"127.0.0.1:9876\")")]
    listen: String,
    /// connections held at once (serverMaxConnections; default: the
    /// descriptor limit less a reserve for the process)
    #[argh(option)]
    max_connections: Option<usize>,
    /// accounts file (plain_acl.yml format) guarding the write codes
    /// (registrations, KV config, topic deletion): they then need a
    /// whitelisted address or an admin account's signature (mq's; RocketMQ's
    /// NameServer checks nothing)
    #[argh(option)]
    acl_file: Option<PathBuf>,
}

/// run a Broker configured by a RocketMQ-style broker.conf
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "broker",
    example = "{command_name} -c broker.conf --listenPort 10921 --namesrvAddr 127.0.0.1:9876"
)]
struct BrokerCmd {
    /// the broker.conf file (key=value lines); any broker.conf key may also be
    /// given as `--key value`, which wins over the file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// broker.conf overrides as key=value (from `--key value` on the command line)
    #[argh(option, hidden_help)]
    r#override: Vec<String>,
}

/// run a NameServer and one master Broker in one process (the embedded default)
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "standalone",
    example = "{command_name} --data ./mq-data"
)]
struct StandaloneCmd {
    /// data directory (default ./mq-data)
    #[argh(option, default = "PathBuf::from(\"mq-data\")")]
    data: PathBuf,
    /// address of the NameServer (default 127.0.0.1:9876)
    #[argh(option, default = "String::from(\"127.0.0.1:9876\")")]
    namesrv_listen: String,
    /// connections the NameServer holds at once (default: a third of the
    /// descriptor limit less a reserve; the broker's serverMaxConnections
    /// sets each of its two listeners)
    #[argh(option)]
    namesrv_max_connections: Option<usize>,
    /// accounts file guarding the NameServer's write codes, as
    /// `mqd namesrv --acl-file` (the broker signs its registrations with its
    /// accessKey and secretKey)
    #[argh(option)]
    namesrv_acl_file: Option<PathBuf>,
    /// broker port (default 10911; the VIP port is this minus 2, HA this plus 1)
    #[argh(option, default = "10911")]
    listen_port: u16,
    /// broker address announced to clients (default 127.0.0.1)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    broker_ip: String,
    /// an optional broker.conf for the broker's other settings; any broker.conf
    /// key may also be given as `--key value`
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// broker.conf overrides as key=value (from `--key value` on the command line)
    #[argh(option, hidden_help)]
    r#override: Vec<String>,
}

/// Options argh knows, per subcommand; any other `--key value` is a broker.conf key.
const KNOWN_OPTIONS: &[&str] = &[
    "-c",
    "--config",
    "--data",
    "--namesrv-listen",
    "--listen-port",
    "--broker-ip",
    "--namesrv-max-connections",
    "--namesrv-acl-file",
    "--acl-file",
    "--listen",
    "--max-connections",
    "--help",
    "help",
];

/// Moves `--key value` broker.conf overrides into `--override key=value`, so
/// that argh (which refuses unknown options) accepts them.
fn rewrite_overrides(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    out.extend(iter.next()); // program name
    let Some(sub) = iter.next() else { return out };
    let takes_overrides = sub == "broker" || sub == "standalone";
    out.push(sub);
    while let Some(arg) = iter.next() {
        let is_known = KNOWN_OPTIONS
            .iter()
            .any(|k| arg == *k || arg.starts_with(&format!("{k}=")));
        if takes_overrides && arg.starts_with("--") && !is_known {
            let key = arg.trim_start_matches("--");
            let pair = match key.split_once('=') {
                Some(_) => key.to_owned(),
                None => format!("{key}={}", iter.next().unwrap_or_default()),
            };
            out.push("--override".into());
            out.push(pair);
        } else {
            out.push(arg);
        }
    }
    out
}

fn main() -> ExitCode {
    let argv = rewrite_overrides(std::env::args().collect());
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let program = strs.first().copied().unwrap_or("mqd");
    let args: Mqd = match Mqd::from_args(&[program], strs.get(1..).unwrap_or(&[])) {
        Ok(args) => args,
        Err(early) => {
            let status = early.status;
            if status.is_ok() {
                println!("{}", early.output);
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", early.output);
            return ExitCode::from(2);
        }
    };
    init_logger();
    raise_descriptor_limit();
    // Block the stop signals in every thread (threads inherit the mask), so
    // that one thread can wait for them with sigwait.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("mqd: cannot block signals: {e}");
        return ExitCode::from(1);
    }
    match run(args.command, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("mqd: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("mqd: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn broker_config(file: Option<&PathBuf>, overrides: &[String]) -> Result<BrokerConfig, Failure> {
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
            BrokerConfig::from_properties(&text).map_err(Failure::Usage)?
        }
        None => BrokerConfig::default(),
    };
    for pair in overrides {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("expected --key value, found --{pair}")))?;
        if value.is_empty() {
            return Err(Failure::Usage(format!("--{key} needs a value")));
        }
        config.set(key, value).map_err(Failure::Usage)?;
    }
    if config.namesrv_addrs.is_empty() {
        if let Ok(addrs) = std::env::var("NAMESRV_ADDR") {
            config.set("namesrvAddr", &addrs).map_err(Failure::Usage)?;
        }
    }
    Ok(config)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, before anything is opened
/// or any connection limit is derived from it.
fn raise_descriptor_limit() {
    match descriptors::raise_limit() {
        Ok(r) if r.now > r.before => log::info!(
            "descriptor limit (RLIMIT_NOFILE) raised from {} to the hard limit, {}",
            r.before,
            r.now
        ),
        Ok(r) => log::info!(
            "descriptor limit (RLIMIT_NOFILE) {}, the hard limit {}",
            r.now,
            r.hard
        ),
        Err(e) => log::warn!(
            "cannot raise the descriptor limit (RLIMIT_NOFILE): {e}; keeping {}",
            descriptors::soft_limit()
        ),
    }
}

/// A connection limit given on the command line, which must admit someone.
fn connection_limit(option: &str, value: Option<usize>) -> Result<Option<usize>, Failure> {
    match value {
        Some(0) => Err(Failure::Usage(format!("{option} must be at least 1"))),
        other => Ok(other),
    }
}

fn run(command: Command, signals: SigSet) -> Result<(), Failure> {
    let ex = Arc::new(Executor::new());
    let (shutdown, trigger) = Shutdown::new();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let (stop_workers, workers_stop) = async_channel::bounded::<()>(1);
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let ex = ex.clone();
            let stop = workers_stop.clone();
            std::thread::Builder::new()
                .name(format!("mqd-worker-{i}"))
                .spawn(move || async_io::block_on(ex.run(stop.recv())))
                .expect("spawn worker thread")
        })
        .collect();

    let result = async_io::block_on(ex.run(async {
        let mut namesrv_addr = None;
        let mut broker: Option<Arc<Broker>> = None;
        // Each listener's connection limit, to check them against the
        // descriptor limit once everything is open.
        let mut listener_limits = Vec::new();
        match command {
            Command::Namesrv(cmd) => {
                let addr = parse_addr(&cmd.listen)?;
                let max = connection_limit("--max-connections", cmd.max_connections)?
                    .unwrap_or_else(|| descriptors::connections_per_listener(1));
                listener_limits.push(max);
                namesrv_addr = Some(start_namesrv(&ex, addr, max, cmd.acl_file, &shutdown).await?);
            }
            Command::Broker(cmd) => {
                let mut config = broker_config(cmd.config.as_ref(), &cmd.r#override)?;
                let max = *config
                    .max_connections
                    .get_or_insert_with(|| descriptors::connections_per_listener(2));
                listener_limits.extend([max, max]);
                broker = Some(start_broker(&ex, config, &shutdown).await?);
            }
            Command::Standalone(cmd) => {
                // The NameServer, the broker and its VIP port share one
                // descriptor table.
                let share = descriptors::connections_per_listener(3);
                let addr = parse_addr(&cmd.namesrv_listen)?;
                let max =
                    connection_limit("--namesrv-max-connections", cmd.namesrv_max_connections)?
                        .unwrap_or(share);
                listener_limits.push(max);
                let bound = start_namesrv(&ex, addr, max, cmd.namesrv_acl_file, &shutdown).await?;
                namesrv_addr = Some(bound);
                let mut config = broker_config(cmd.config.as_ref(), &cmd.r#override)?;
                let max = *config.max_connections.get_or_insert(share);
                listener_limits.extend([max, max]);
                let set = |config: &mut BrokerConfig, k: &str, v: &str| {
                    config.set(k, v).map_err(Failure::Usage)
                };
                set(&mut config, "namesrvAddr", &bound.to_string())?;
                set(&mut config, "listenPort", &cmd.listen_port.to_string())?;
                set(&mut config, "brokerIP1", &cmd.broker_ip)?;
                set(
                    &mut config,
                    "storePathRootDir",
                    &cmd.data.join("store").display().to_string(),
                )?;
                broker = Some(start_broker(&ex, config, &shutdown).await?);
            }
        }
        descriptors::check_headroom(&listener_limits);
        if let Some(addr) = namesrv_addr {
            println!("mqd: namesrv listening on {addr}");
        }
        if let Some(b) = &broker {
            println!(
                "mqd: broker {} listening on {}",
                b.config().broker_name,
                b.config().broker_addr()
            );
        }
        Ok::<_, Failure>(broker)
    }));
    let broker = match result {
        Ok(broker) => broker,
        Err(e) => {
            drop(stop_workers);
            return Err(e);
        }
    };

    // Wait for SIGTERM or SIGINT on this thread.
    match signals.wait() {
        Ok(sig) => log::warn!("{sig:?} received: shutting down"),
        Err(e) => log::error!("waiting for signals: {e}; shutting down"),
    }
    let outcome = async_io::block_on(ex.run(async {
        if let Some(broker) = &broker {
            broker.begin_shutdown().await;
        }
        trigger.trigger_and_wait(Duration::from_secs(10)).await;
        match &broker {
            Some(broker) => broker.finish_shutdown().await,
            None => Ok(()),
        }
    }));
    drop(stop_workers);
    for w in workers {
        let _ = w.join();
    }
    outcome.map_err(|e| Failure::Runtime(format!("shutdown: {e}")))
}

fn parse_addr(text: &str) -> Result<SocketAddr, Failure> {
    text.parse()
        .map_err(|_| Failure::Usage(format!("{text:?} is not an address like 127.0.0.1:9876")))
}

async fn start_namesrv(
    ex: &Arc<Executor<'static>>,
    addr: SocketAddr,
    max_connections: usize,
    acl_file: Option<PathBuf>,
    shutdown: &Shutdown,
) -> Result<SocketAddr, Failure> {
    let config = NamesrvConfig {
        max_connections: Some(max_connections),
        acl_file,
        ..NamesrvConfig::default()
    };
    namesrv::start_with(ex.clone(), addr, shutdown.clone(), config)
        .await
        .map_err(|e| Failure::Runtime(format!("namesrv on {addr}: {e}")))
}

async fn start_broker(
    ex: &Arc<Executor<'static>>,
    mut config: BrokerConfig,
    shutdown: &Shutdown,
) -> Result<Arc<Broker>, Failure> {
    config.validate().map_err(Failure::Usage)?;
    Broker::start(ex.clone(), config, shutdown.clone())
        .await
        .map_err(|e| Failure::Runtime(format!("broker: {e}")))
}

/// Logs to stderr, filtered by `RUST_LOG` (warnings by default), each line
/// stamped with UTC time to the millisecond: `[2026-11-30T20:33:16.027Z INFO
/// module] message`. The timestamp is formatted here, so the logger needs no
/// date crate.
fn init_logger() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|out, record| {
            let now = mq_protocol::time::DateTime::from_ms(mq_protocol::time::now_ms());
            writeln!(
                out,
                "[{} {:<5} {}] {}",
                now.rfc3339(),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
}
