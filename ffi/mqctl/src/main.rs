//! `mqctl`: the command-line tool of mq. One file per verb, each a struct whose
//! doc comments are its help text and whose `run` does the work:
//!
//! - [`produce`]: send messages from arguments, standard input or a generator.
//! - [`consume`]: receive messages with a pull consumer.
//! - [`topic`]: create, delete, list, route and stats of topics.
//! - [`cluster`]: the brokers of every cluster, with their runtime counters.
//! - [`group`]: a consumer group's progress and its consumers online.
//! - [`offset`]: reset a group's offsets to a point in time.
//! - [`query`]: find messages by key or by id.
//! - [`bench`](mod@bench): produce and consume load with throughput and latency.
//!
//! Helpers: [`output`] (exit codes, formats, tables), [`admin`] (admin
//! requests), [`histogram`] (latency histogram of `bench`).
//!
//! `main` parses, runs the verb on `smol::block_on`, prints a failure as one
//! `mqctl: <error>` line on standard error and exits 0, 1 or 2; a panic is
//! caught and reported the same way.

mod admin;
mod bench;
mod cluster;
mod consume;
mod group;
mod histogram;
mod offset;
mod output;
mod produce;
mod query;
mod topic;

use std::process::ExitCode;

use argh::FromArgs;
use mq::{ClientConfig, ClientInstance};

use admin::Ctx;
use output::{usage, Failure, Outcome};

/// NameServer used when neither --namesrv nor NAMESRV_ADDR is given.
const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";

/// command-line tool of mq, a RocketMQ-compatible message queue
#[derive(FromArgs)]
#[argh(
    example = "{command_name} produce --topic TopicTest hello world",
    example = "{command_name} consume --topic TopicTest --from first --count 10",
    example = "{command_name} --namesrv 10.0.0.1:9876 topic create --topic TopicTest",
    example = "NAMESRV_ADDR=10.0.0.1:9876 {command_name} cluster",
    note = "--namesrv may also be given after the verb (mqctl topic list -n host:9876). Results go to standard output (--format json on most verbs for scripts), diagnostics to standard error.",
    error_code(0, "success"),
    error_code(1, "the operation failed (the reason is on standard error)"),
    error_code(2, "usage error: bad or missing arguments")
)]
struct Mqctl {
    /// name server address(es), `;`-separated (default: $NAMESRV_ADDR, else 127.0.0.1:9876)
    #[argh(option, short = 'n')]
    namesrv: Option<String>,
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Produce(produce::ProduceCmd),
    Consume(consume::ConsumeCmd),
    Topic(topic::TopicCmd),
    Cluster(cluster::ClusterCmd),
    Group(group::GroupCmd),
    Offset(offset::OffsetCmd),
    Query(query::QueryCmd),
    Bench(bench::BenchCmd),
}

/// Moves `--namesrv X` / `-n X` / `--namesrv=X` from after the verb to the
/// front, where argh wants top-level options. Arguments after `--` stay put.
fn hoist_namesrv(args: Vec<String>) -> Vec<String> {
    let mut iter = args.into_iter();
    let mut out: Vec<String> = iter.next().into_iter().collect();
    let mut front = Vec::new();
    let mut rest = Vec::new();
    let mut ended = false;
    while let Some(arg) = iter.next() {
        if ended {
            rest.push(arg);
        } else if arg == "--" {
            ended = true;
            rest.push(arg);
        } else if arg == "--namesrv" || arg == "-n" {
            front.push("--namesrv".to_owned());
            // A missing value is reported by argh.
            front.extend(iter.next());
        } else if let Some(value) = arg.strip_prefix("--namesrv=") {
            front.push("--namesrv".to_owned());
            front.push(value.to_owned());
        } else {
            rest.push(arg);
        }
    }
    out.extend(front);
    out.extend(rest);
    out
}

/// `mqctl topic create` for `mqctl topic create --bad`: the command whose
/// help to point at.
fn verb_path(args: &[String]) -> String {
    const VERBS: &[&str] = &[
        "produce", "consume", "topic", "cluster", "group", "offset", "query", "bench",
    ];
    const WITH_SUB: &[&str] = &["topic", "group", "offset", "bench"];
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .skip_while(|a| a.starts_with('-') || !VERBS.contains(a))
        .take(2)
        .collect();
    let mut path = String::from("mqctl");
    if let Some(verb) = words.first() {
        path.push(' ');
        path.push_str(verb);
        if let Some(sub) = words
            .get(1)
            .filter(|s| WITH_SUB.contains(verb) && !s.starts_with('-'))
        {
            path.push(' ');
            path.push_str(sub);
        }
    }
    path
}

/// argh's parse errors span lines; mqctl reports one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn main() -> ExitCode {
    // A panic is a bug, but still one line and exit 1, never a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("mqctl: internal error: {}{at}", one_line(&msg));
    }));
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().enumerate() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!("mqctl: argument {i} is not valid UTF-8: {a:?}");
                return ExitCode::from(2);
            }
        }
    }
    let args = hoist_namesrv(args);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let parsed = match Mqctl::from_args(&["mqctl"], strs.get(1..).unwrap_or(&[])) {
        Ok(parsed) => parsed,
        Err(early) => {
            if early.status.is_ok() {
                // --help: its text is the result.
                return match output::line(early.output.trim_end()) {
                    Err(Failure::Failed(_)) => ExitCode::from(1),
                    _ => ExitCode::SUCCESS,
                };
            }
            eprintln!(
                "mqctl: {} (see {} --help)",
                one_line(&early.output).trim_end_matches('.'),
                verb_path(&args)
            );
            return ExitCode::from(2);
        }
    };
    let outcome = std::panic::catch_unwind(|| smol::block_on(run(parsed)));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(failure)) => {
            match &failure {
                Failure::Usage(msg) => eprintln!("mqctl: {}", one_line(msg)),
                Failure::Failed(msg) => eprintln!("mqctl: {}", one_line(msg)),
                // Whoever read our output stopped; that is not an error.
                Failure::BrokenPipe => {}
            }
            ExitCode::from(failure.exit_code())
        }
        // The hook printed it.
        Err(_) => ExitCode::from(1),
    }
}

async fn run(args: Mqctl) -> Outcome {
    let namesrv = args
        .namesrv
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESRV.to_owned());
    let config = ClientConfig::new(&namesrv);
    if config.namesrv_addrs.is_empty() {
        return Err(usage(format!("no NameServer address in {namesrv:?}")));
    }
    let instance = ClientInstance::start(config).map_err(|e| usage(e.to_string()))?;
    let ctx = Ctx {
        namesrv,
        instance: instance.clone(),
    };
    let outcome = match args.cmd {
        Cmd::Produce(cmd) => cmd.run(&ctx).await,
        Cmd::Consume(cmd) => cmd.run(&ctx).await,
        Cmd::Topic(cmd) => cmd.run(&ctx).await,
        Cmd::Cluster(cmd) => cmd.run(&ctx).await,
        Cmd::Group(cmd) => cmd.run(&ctx).await,
        Cmd::Offset(cmd) => cmd.run(&ctx).await,
        Cmd::Query(cmd) => cmd.run(&ctx).await,
        Cmd::Bench(cmd) => cmd.run(&ctx).await,
    };
    instance.shutdown();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn namesrv_moves_to_the_front() {
        assert_eq!(
            hoist_namesrv(strings(&["mqctl", "topic", "list", "-n", "h:1"])),
            strings(&["mqctl", "--namesrv", "h:1", "topic", "list"])
        );
        assert_eq!(
            hoist_namesrv(strings(&["mqctl", "produce", "--namesrv=h:1", "--", "-n"])),
            strings(&["mqctl", "--namesrv", "h:1", "produce", "--", "-n"])
        );
    }

    #[test]
    fn parse_errors_are_one_line() {
        assert_eq!(
            one_line("Required options not provided:\n    --topic\n"),
            "Required options not provided: --topic"
        );
    }
}
