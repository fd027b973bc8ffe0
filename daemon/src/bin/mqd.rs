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
use mq_daemon::notify::Notifier;
use mq_daemon::settings::{Configurable, Layered, Source};
use mq_daemon::shutdown::Shutdown;
use mq_daemon::watchdog::{self, Probe};

/// Every request allocates (header maps, JSON, bodies) on worker threads
/// that free each other's memory; glibc's malloc spent about a quarter of
/// the broker's CPU on its arena locks under load (perf), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mq daemon: RocketMQ-compatible NameServer and Broker.
#[derive(FromArgs)]
#[argh(
    example = "{command_name} namesrv -c /etc/mq/namesrv.conf",
    example = "{command_name} broker -c /etc/mq/broker-a.conf",
    example = "{command_name} broker -c /etc/mq/broker-a.conf --print-config",
    example = "{command_name} standalone --data ./mq-data",
    note = "Files: /etc/mq/namesrv.conf and /etc/mq/broker-<instance>.conf under the systemd units mq-namesrv.service and mq-broker@<instance>.service; every key is in the README's Configuration table, and `--print-config` shows the settings in effect and where each came from.\n\nEnvironment: NAMESRV_ADDR (the broker's namesrvAddr when nothing else sets it); RUST_LOG (log level, warn by default: info, debug, or per module); NOTIFY_SOCKET and WATCHDOG_USEC (set by systemd: READY=1 once serving, STOPPING=1 on SIGTERM, WATCHDOG=1 while the servers answer).\n\nSignals: SIGTERM or SIGINT stop cleanly (unregister, answer requests in flight, flush the store).",
    error_code(
        0,
        "stopped cleanly after SIGTERM or SIGINT (or --help, --print-config)"
    ),
    error_code(
        1,
        "the daemon failed (a port in use, a store that cannot open, a failed shutdown)"
    ),
    error_code(
        2,
        "usage or configuration error: the message names the file, line and reason"
    )
)]
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
    example = "{command_name} -c /etc/mq/namesrv.conf",
    example = "{command_name} --listen 0.0.0.0:9876"
)]
struct NamesrvCmd {
    /// a namesrv.conf (key=value lines: listenIP, listenPort,
    /// serverMaxConnections, ...); any of its keys may also be given as
    /// `--key value`, which wins over the file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// address to listen on (default 127.0.0.1:9876; sets listenIP and listenPort)
    #[argh(option)]
    listen: Option<String>,
    /// connections held at once (serverMaxConnections; default: the
    /// descriptor limit less a reserve for the process)
    #[argh(option)]
    max_connections: Option<usize>,
    /// port of the Prometheus endpoint (metricsPort; default: none), on the
    /// --listen address
    #[argh(option)]
    metrics_port: Option<u16>,
    /// namesrv.conf overrides as key=value (from `--key value` on the command line)
    #[argh(option, hidden_help)]
    r#override: Vec<String>,
    /// print every setting in effect and where it came from, then exit
    #[argh(switch)]
    print_config: bool,
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
    /// print every setting in effect and where it came from (default, file:line,
    /// command line, environment), then exit
    #[argh(switch)]
    print_config: bool,
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
    /// port of the NameServer's Prometheus endpoint (default: none; the
    /// broker's is its metricsPort key)
    #[argh(option)]
    namesrv_metrics_port: Option<u16>,
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
    "--namesrv-metrics-port",
    "--namesrv-acl-file",
    "--acl-file",
    "--listen",
    "--max-connections",
    "--print-config",
    "--metrics-port",
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
    let takes_overrides = matches!(sub.as_str(), "namesrv" | "broker" | "standalone");
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
    let printed = match &args.command {
        Command::Broker(cmd) if cmd.print_config => Some(print_broker_config(cmd)),
        Command::Namesrv(cmd) if cmd.print_config => Some(print_namesrv_config(cmd)),
        _ => None,
    };
    if let Some(printed) = printed {
        return match printed {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(msg) | Failure::Runtime(msg)) => {
                eprintln!("mqd: {msg}");
                ExitCode::from(2)
            }
        };
    }
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

/// The broker's settings from defaults, the file, `--key value` and
/// `NAMESRV_ADDR`, each value remembering where it came from.
fn broker_config(
    file: Option<&PathBuf>,
    overrides: &[String],
) -> Result<Layered<BrokerConfig>, Failure> {
    let mut layered = Layered::<BrokerConfig>::default();
    if let Some(path) = file {
        layered.read_file(path).map_err(Failure::Usage)?;
    }
    apply_overrides(&mut layered, overrides)?;
    if !layered.is_set("namesrvAddr") {
        if let Ok(addrs) = std::env::var("NAMESRV_ADDR") {
            layered
                .set("namesrvAddr", &addrs, Source::Environment("NAMESRV_ADDR"))
                .map_err(Failure::Usage)?;
        }
    }
    if !layered.is_set("storePathRootDir") {
        log::info!(
            "storePathRootDir not set; using {}",
            layered.config().store.root.display()
        );
    }
    Ok(layered)
}

/// Applies `--key value` pairs (as `key=value`, see [`rewrite_overrides`]).
fn apply_overrides<C: Configurable>(
    layered: &mut Layered<C>,
    overrides: &[String],
) -> Result<(), Failure> {
    for pair in overrides {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("expected --key value, found --{pair}")))?;
        if value.is_empty() {
            return Err(Failure::Usage(format!("--{key} needs a value")));
        }
        layered
            .set(key, value, Source::CommandLine)
            .map_err(Failure::Usage)?;
    }
    Ok(())
}

/// Checks the settings against each other; an error names where the keys
/// it involves were set.
fn validated(mut layered: Layered<BrokerConfig>) -> Result<BrokerConfig, Failure> {
    match layered.config_mut().validate() {
        Ok(()) => Ok(layered.into_config()),
        Err(e) => Err(Failure::Usage(layered.explain(&e))),
    }
}

/// `mqd broker --print-config`: the effective settings and their sources,
/// after the same checks as a start.
fn print_broker_config(cmd: &BrokerCmd) -> Result<(), Failure> {
    let mut layered = broker_config(cmd.config.as_ref(), &cmd.r#override)?;
    if let Err(e) = layered.config_mut().validate() {
        return Err(Failure::Usage(layered.explain(&e)));
    }
    print!("{}", layered.render());
    Ok(())
}

/// The NameServer's settings from defaults, the file and the command line.
fn namesrv_config(cmd: &NamesrvCmd) -> Result<Layered<NamesrvConfig>, Failure> {
    let mut layered = Layered::<NamesrvConfig>::default();
    if let Some(path) = &cmd.config {
        layered.read_file(path).map_err(Failure::Usage)?;
    }
    let mut set = |k: &str, v: &str| {
        layered
            .set(k, v, Source::CommandLine)
            .map_err(Failure::Usage)
    };
    if let Some(listen) = &cmd.listen {
        let addr = parse_addr(listen)?;
        set("listenIP", &addr.ip().to_string())?;
        set("listenPort", &addr.port().to_string())?;
    }
    if let Some(max) = connection_limit("--max-connections", cmd.max_connections)? {
        set("serverMaxConnections", &max.to_string())?;
    }
    if let Some(port) = cmd.metrics_port {
        set("metricsPort", &port.to_string())?;
    }
    if let Some(file) = &cmd.acl_file {
        set("plainAclFile", &file.display().to_string())?;
    }
    apply_overrides(&mut layered, &cmd.r#override)?;
    Ok(layered)
}

/// `mqd namesrv --print-config`.
fn print_namesrv_config(cmd: &NamesrvCmd) -> Result<(), Failure> {
    print!("{}", namesrv_config(cmd)?.render());
    Ok(())
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
    let notifier = match Notifier::from_env() {
        Ok(n) => n.map(Arc::new),
        Err(e) => return Err(Failure::Usage(format!("NOTIFY_SOCKET: {e}"))),
    };
    let ex = Arc::new(Executor::new());
    let (shutdown, trigger) = Shutdown::new();
    // Executor threads: one per core but one, at least one. The other core
    // is for the store's own threads (dispatch, flush, segment allocation)
    // and the kernel's network work; this thread only waits for signals once
    // started. On 2 cores one executor thread beat two everywhere measured:
    // less broker CPU per send, +12 % with the Java client, +20 % for async
    // sends, +15-30 % reading a backlog (fewer wake-ups of a parked thread
    // for work the thread that took the event runs anyway).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
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
                let mut config = namesrv_config(&cmd)?.into_config();
                let max = *config
                    .max_connections
                    .get_or_insert_with(|| descriptors::connections_per_listener(1));
                listener_limits.push(max);
                namesrv_addr = Some(start_namesrv(&ex, config, &shutdown).await?);
            }
            Command::Broker(cmd) => {
                let mut config = validated(broker_config(cmd.config.as_ref(), &cmd.r#override)?)?;
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
                let config = NamesrvConfig {
                    listen: addr,
                    max_connections: Some(max),
                    metrics_port: cmd.namesrv_metrics_port.filter(|p| *p != 0),
                    acl_file: cmd.namesrv_acl_file,
                    ..NamesrvConfig::default()
                };
                let bound = start_namesrv(&ex, config, &shutdown).await?;
                namesrv_addr = Some(bound);
                let mut layered = broker_config(cmd.config.as_ref(), &cmd.r#override)?;
                let mut set = |k: &str, v: &str| {
                    layered
                        .set(k, v, Source::CommandLine)
                        .map_err(Failure::Usage)
                };
                set("namesrvAddr", &bound.to_string())?;
                set("listenPort", &cmd.listen_port.to_string())?;
                set("brokerIP1", &cmd.broker_ip)?;
                set(
                    "storePathRootDir",
                    &cmd.data.join("store").display().to_string(),
                )?;
                let mut config = validated(layered)?;
                let max = *config.max_connections.get_or_insert(share);
                listener_limits.extend([max, max]);
                broker = Some(start_broker(&ex, config, &shutdown).await?);
            }
        }
        descriptors::check_headroom(&listener_limits);
        let mut serving = Vec::new();
        if let Some(addr) = namesrv_addr {
            serving.push(format!("namesrv listening on {addr}"));
        }
        if let Some(b) = &broker {
            serving.push(format!(
                "broker {} ({}) listening on {}",
                b.config().broker_name,
                b.config().role_name(),
                b.config().broker_addr()
            ));
        }
        for line in &serving {
            println!("mqd: {line}");
        }
        let mut probes: Vec<Probe> = namesrv_addr.into_iter().map(Probe::namesrv).collect();
        probes.extend(broker.iter().map(|b| Probe::broker(b.config().bind_addr())));
        if let Some(notifier) = &notifier {
            // Every listener is bound and the store recovered: serving.
            // STATUS is what `systemctl status` shows.
            notifier.notify_or_log(&format!("READY=1\nSTATUS={}", serving.join("; ")));
            if let Some(interval) = notifier.watchdog() {
                ex.spawn(watchdog::run(
                    notifier.clone(),
                    interval,
                    probes,
                    shutdown.clone(),
                ))
                .detach();
            }
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
    if let Some(notifier) = &notifier {
        notifier.notify_or_log("STOPPING=1\nSTATUS=shutting down");
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
    config: NamesrvConfig,
    shutdown: &Shutdown,
) -> Result<SocketAddr, Failure> {
    let addr = config.listen;
    namesrv::start_with(ex.clone(), addr, shutdown.clone(), config)
        .await
        .map_err(|e| Failure::Runtime(format!("namesrv on {addr}: {e}")))
}

async fn start_broker(
    ex: &Arc<Executor<'static>>,
    config: BrokerConfig,
    shutdown: &Shutdown,
) -> Result<Arc<Broker>, Failure> {
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
