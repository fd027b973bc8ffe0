//! From a command line to an exit code: argh's parsing (with `--namesrv`
//! allowed after the verb), the NameServer address from the flag or the
//! environment, the verb run on [`async_io::block_on`], and every way a run
//! ends turned into one exit code and at most one `mqctl: <error>` line.

use std::ffi::OsString;
use std::panic::AssertUnwindSafe;

use argh::FromArgs;
use mq::{ClientConfig, ClientInstance, Credentials};

use crate::admin::Ctx;
use crate::console::Console;
use crate::output::{usage, Failure, Outcome};
use crate::{bench, broker, cluster, consume, group, offset, panic, produce, query, topic};

/// NameServer used when neither --namesrv nor NAMESRV_ADDR is given.
const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";

/// command-line tool of mq, a RocketMQ-compatible message queue
#[derive(FromArgs)]
#[argh(
    example = "{command_name} produce --topic TopicTest hello world",
    example = "{command_name} consume --topic TopicTest --from first --count 10",
    example = "{command_name} --namesrv 10.0.0.1:9876 topic create --topic TopicTest",
    example = "NAMESRV_ADDR=10.0.0.1:9876 {command_name} cluster",
    example = "MQ_ACCESS_KEY=RocketMQ MQ_SECRET_KEY=12345678 {command_name} produce --topic TopicTest hi",
    note = "--namesrv, --access-key and --secret-key may also be given after the verb (mqctl topic list -n host:9876). Results go to standard output (--format json on most verbs for scripts), diagnostics to standard error.",
    error_code(0, "success"),
    error_code(1, "the operation failed (the reason is on standard error)"),
    error_code(2, "usage error: bad or missing arguments")
)]
struct Mqctl {
    /// name server address(es), `;`-separated (default: $NAMESRV_ADDR, else 127.0.0.1:9876)
    #[argh(option, short = 'n')]
    namesrv: Option<String>,
    /// access key to sign requests with, for brokers with ACL on (default: $MQ_ACCESS_KEY)
    #[argh(option)]
    access_key: Option<String>,
    /// secret key of --access-key (default: $MQ_SECRET_KEY; prefer the variable, which `ps` does not show)
    #[argh(option)]
    secret_key: Option<String>,
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
    Broker(broker::BrokerCmd),
    Group(group::GroupCmd),
    Offset(offset::OffsetCmd),
    Query(query::QueryCmd),
    Bench(bench::BenchCmd),
}

/// The top-level options that may come after the verb, and their short forms.
const GLOBAL_OPTIONS: [(&str, Option<&str>); 3] = [
    ("--namesrv", Some("-n")),
    ("--access-key", None),
    ("--secret-key", None),
];

/// Moves `--namesrv X` / `-n X` / `--namesrv=X` (and the other
/// [`GLOBAL_OPTIONS`]) from after the verb to the front, where argh wants
/// top-level options. Arguments after `--` stay put.
fn hoist_global_options(args: Vec<String>) -> Vec<String> {
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
        } else if let Some((long, _)) = GLOBAL_OPTIONS
            .iter()
            .find(|(long, short)| arg == *long || Some(arg.as_str()) == *short)
        {
            front.push((*long).to_owned());
            // A missing value is reported by argh.
            front.extend(iter.next());
        } else if let Some((long, value)) = GLOBAL_OPTIONS.iter().find_map(|(long, _)| {
            arg.strip_prefix(long)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| (*long, v.to_owned()))
        }) {
            front.push(long.to_owned());
            front.push(value);
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

/// Runs mqctl once: `args` is the whole command line, program name first
/// (as [`std::env::args_os`] gives it); `env` looks up an environment
/// variable (only `NAMESRV_ADDR`, `MQ_ACCESS_KEY` and `MQ_SECRET_KEY` are
/// read), so that a caller decides what
/// the run sees; results and diagnostics go to `console`. Returns the exit
/// code: 0 success (also when standard output was closed early), 1 the
/// operation failed or mqctl panicked, 2 a usage error. Every failure is one
/// `mqctl: <error>` line on standard error.
pub fn run<I, T>(args: I, env: impl Fn(&str) -> Option<String>, console: &Console) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut strings = Vec::new();
    for (i, arg) in args.into_iter().enumerate() {
        match arg.into().into_string() {
            Ok(a) => strings.push(a),
            Err(a) => {
                console.warn(format!("argument {i} is not valid UTF-8: {a:?}"));
                return 2;
            }
        }
    }
    let args = hoist_global_options(strings);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let parsed = match Mqctl::from_args(&["mqctl"], strs.get(1..).unwrap_or(&[])) {
        Ok(parsed) => parsed,
        Err(early) => {
            if early.status.is_ok() {
                // --help: its text is the result.
                return match console.line(early.output.trim_end()) {
                    Err(Failure::Failed(_)) => 1,
                    _ => 0,
                };
            }
            console.warn(format!(
                "{} (see {} --help)",
                one_line(&early.output).trim_end_matches('.'),
                verb_path(&args)
            ));
            return 2;
        }
    };
    let namesrv = parsed
        .namesrv
        .clone()
        .or_else(|| env("NAMESRV_ADDR"))
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESRV.to_owned());
    let access_key = parsed.access_key.clone().or_else(|| env("MQ_ACCESS_KEY"));
    let secret_key = parsed.secret_key.clone().or_else(|| env("MQ_SECRET_KEY"));
    let credentials = match (access_key, secret_key) {
        (None, None) => None,
        (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => Some(Credentials::new(ak, sk)),
        _ => {
            console.warn(
                "an access key needs its secret key and the other way round \
                 (--access-key/$MQ_ACCESS_KEY, --secret-key/$MQ_SECRET_KEY)",
            );
            return 2;
        }
    };
    let outcome = panic::catch(AssertUnwindSafe(|| {
        async_io::block_on(execute(parsed, namesrv, credentials, console))
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(failure)) => {
            match &failure {
                Failure::Usage(msg) | Failure::Failed(msg) => console.warn(one_line(msg)),
                // Whoever read our output stopped; that is not an error.
                Failure::BrokenPipe => {}
            }
            failure.exit_code()
        }
        Err(panicked) => {
            console.warn(format!("internal error: {}", one_line(&panicked)));
            1
        }
    }
}

/// Connects to `namesrv` and runs the verb.
async fn execute(
    args: Mqctl,
    namesrv: String,
    credentials: Option<Credentials>,
    console: &Console,
) -> Outcome {
    let mut config = ClientConfig::new(&namesrv);
    config.credentials = credentials.clone();
    if config.namesrv_addrs.is_empty() {
        return Err(usage(format!("no NameServer address in {namesrv:?}")));
    }
    let instance = ClientInstance::start(config).map_err(|e| usage(e.to_string()))?;
    let ctx = Ctx {
        namesrv,
        credentials,
        instance: instance.clone(),
        console,
    };
    let outcome = match args.cmd {
        Cmd::Produce(cmd) => cmd.run(&ctx).await,
        Cmd::Consume(cmd) => cmd.run(&ctx).await,
        Cmd::Topic(cmd) => cmd.run(&ctx).await,
        Cmd::Cluster(cmd) => cmd.run(&ctx).await,
        Cmd::Broker(cmd) => cmd.run(&ctx).await,
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
            hoist_global_options(strings(&["mqctl", "topic", "list", "-n", "h:1"])),
            strings(&["mqctl", "--namesrv", "h:1", "topic", "list"])
        );
        assert_eq!(
            hoist_global_options(strings(&["mqctl", "produce", "--namesrv=h:1", "--", "-n"])),
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
