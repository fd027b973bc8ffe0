//! `mqctl produce`: sends messages whose bodies come from the arguments, from
//! standard input (one message a line) or from a generator (`--count`), in
//! sync, async or one-way mode, and prints each message's ids (or a summary).

use std::collections::BTreeMap;
use std::time::Instant;

use argh::FromArgs;
use futures_lite::io::{AsyncBufReadExt, BufReader};
use mq::message::unique_id;
use mq::{ClientError, Message, Producer, ProducerConfig, SendResult, SendStatus};
use mq_protocol::properties::keys;

use crate::admin::Ctx;
use crate::console::Console;
use crate::output::{failed, usage, Format, Mode, Outcome, Progress};

/// Sends in flight at once in async mode.
const ASYNC_WINDOW: usize = 128;
/// Failed sends reported one by one before the rest are only counted.
const ERRORS_SHOWN: u64 = 10;
/// Largest body the producer accepts (RocketMQ's maxMessageSize).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// send messages: bodies from arguments, from standard input (one message a line), or generated
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "produce",
    example = "{command_name} --topic TopicTest hello world",
    example = "seq 1000 | {command_name} --topic TopicTest --tag TagA --mode async",
    example = "{command_name} --topic TopicTest --count 10000 --size 512 --key order-1",
    note = "Without bodies or --count, each line of standard input is one message (empty lines are skipped). Prints one line per message (msgId = the client's unique id, offsetMsgId = the broker's), or one summary line with --count or --summary; exits 1 if any send failed."
)]
pub struct ProduceCmd {
    /// topic to send to
    #[argh(option, short = 't')]
    topic: String,
    /// tag of every message
    #[argh(option)]
    tag: Option<String>,
    /// key of every message (repeat for several); `mqctl query --key` finds them
    #[argh(option, short = 'k')]
    key: Vec<String>,
    /// delay level 1..18 (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h)
    #[argh(option)]
    delay: Option<i32>,
    /// send mode: sync (default), async or oneway
    #[argh(option, default = "Mode::Sync")]
    mode: Mode,
    /// send N generated messages instead of bodies from arguments or standard input
    #[argh(option)]
    count: Option<u64>,
    /// size in bytes of generated bodies (with --count; default 128)
    #[argh(option)]
    size: Option<usize>,
    /// producer group (default mqctl_producer)
    #[argh(option, default = "String::from(\"mqctl_producer\")")]
    group: String,
    /// print one summary line instead of a line per message
    #[argh(switch)]
    summary: bool,
    /// output format: text (default) or json
    #[argh(option, default = "Format::Text")]
    format: Format,
    /// message bodies; none: read standard input
    #[argh(positional, greedy)]
    bodies: Vec<String>,
}

/// Where bodies come from.
enum Bodies {
    Args(std::vec::IntoIter<String>),
    /// Standard input, read on a blocking thread.
    Stdin(BufReader<blocking::Unblock<Box<dyn std::io::BufRead + Send>>>),
    Generated {
        left: u64,
        body: Vec<u8>,
    },
}

impl Bodies {
    async fn next(&mut self) -> Outcome<Option<Vec<u8>>> {
        match self {
            Bodies::Args(args) => Ok(args.next().map(String::into_bytes)),
            Bodies::Generated { left, body } => {
                if *left == 0 {
                    return Ok(None);
                }
                *left -= 1;
                Ok(Some(body.clone()))
            }
            Bodies::Stdin(reader) => loop {
                let mut buf = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .await
                    .map_err(|e| failed(format!("cannot read standard input: {e}")))?;
                if n == 0 {
                    return Ok(None);
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                if !buf.is_empty() {
                    return Ok(Some(buf));
                }
            },
        }
    }
}

/// A generated body: printable, so that `mqctl consume` shows it as text.
pub fn generated_body(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size).map(|i| ALPHABET[i % ALPHABET.len()]).collect()
}

/// The name Java gives a send status.
pub fn status_name(status: SendStatus) -> &'static str {
    match status {
        SendStatus::SendOk => "SEND_OK",
        SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
    }
}

/// Prints outcomes in the order the messages were read, and counts them.
struct Report<'a> {
    cmd: &'a ProduceCmd,
    console: &'a Console,
    per_message: bool,
    sent: u64,
    errors: u64,
    /// Async outcomes that came back before an earlier message's.
    early: BTreeMap<u64, Result<SendResult, ClientError>>,
    next: u64,
    progress: Progress<'a>,
}

impl Report<'_> {
    fn ok(&mut self, index: u64, r: &SendResult) -> Outcome {
        self.sent += 1;
        self.show_progress();
        if !self.per_message {
            return Ok(());
        }
        match self.cmd.format {
            Format::Text => self.console.line(format_args!(
                "msgId={} offsetMsgId={} queue={}:{} offset={} status={}",
                r.msg_id,
                r.offset_msg_id,
                r.queue.broker_name,
                r.queue.queue_id,
                r.queue_offset,
                status_name(r.status)
            )),
            Format::Json => self.console.json_line(&serde_json::json!({
                "index": index,
                "status": status_name(r.status),
                "msgId": r.msg_id,
                "offsetMsgId": r.offset_msg_id,
                "topic": r.queue.topic,
                "brokerName": r.queue.broker_name,
                "queueId": r.queue.queue_id,
                "queueOffset": r.queue_offset,
            })),
        }
    }

    fn oneway(&mut self, index: u64, msg_id: &str) -> Outcome {
        self.sent += 1;
        self.show_progress();
        if !self.per_message {
            return Ok(());
        }
        match self.cmd.format {
            Format::Text => self
                .console
                .line(format_args!("msgId={msg_id} status=ONEWAY")),
            Format::Json => self.console.json_line(&serde_json::json!({
                "index": index, "status": "ONEWAY", "msgId": msg_id,
            })),
        }
    }

    fn error(&mut self, index: u64, e: &ClientError) {
        self.errors += 1;
        if self.errors <= ERRORS_SHOWN {
            self.progress.finish();
            self.console.warn(format!("message {index}: {e}"));
        } else if self.errors == ERRORS_SHOWN + 1 {
            self.console.warn("more failed sends are only counted");
        }
    }

    fn outcome(&mut self, index: u64, r: Result<SendResult, ClientError>) -> Outcome {
        match r {
            Ok(r) => self.ok(index, &r),
            Err(e) => {
                self.error(index, &e);
                Ok(())
            }
        }
    }

    /// An async outcome: printed now if it is the next in order, else kept.
    fn arrived(&mut self, index: u64, r: Result<SendResult, ClientError>) -> Outcome {
        self.early.insert(index, r);
        while let Some(r) = self.early.remove(&self.next) {
            let i = self.next;
            self.next += 1;
            self.outcome(i, r)?;
        }
        Ok(())
    }

    fn show_progress(&mut self) {
        let (sent, total) = (self.sent, self.cmd.count);
        self.progress.update(|| match total {
            Some(t) => format!("sent {sent}/{t}"),
            None => format!("sent {sent}"),
        });
    }
}

impl ProduceCmd {
    fn check(&self, console: &Console) -> Outcome<Bodies> {
        if self.topic.is_empty() {
            return Err(usage("--topic must not be empty"));
        }
        if let Some(d) = self.delay {
            if !(1..=18).contains(&d) {
                return Err(usage(format!("--delay {d}: the delay level must be 1..18")));
            }
        }
        match (self.count, self.bodies.is_empty()) {
            (Some(_), false) => Err(usage(
                "--count generates bodies; give either --count or bodies, not both",
            )),
            (Some(0), true) => Err(usage("--count must be at least 1")),
            (Some(left), true) => {
                let size = self.size.unwrap_or(128);
                if size == 0 || size > MAX_BODY {
                    return Err(usage(format!("--size must be 1..{MAX_BODY} bytes")));
                }
                Ok(Bodies::Generated {
                    left,
                    body: generated_body(size),
                })
            }
            (None, _) if self.size.is_some() => Err(usage("--size needs --count")),
            (None, false) => {
                if self.bodies.iter().any(String::is_empty) {
                    return Err(usage("a message body must not be empty"));
                }
                Ok(Bodies::Args(self.bodies.clone().into_iter()))
            }
            (None, true) => {
                if console.terminals().stdin {
                    console
                        .warn("reading messages from standard input, one a line (end with Ctrl-D)");
                }
                let stdin = console
                    .take_stdin()
                    .ok_or_else(|| failed("standard input was already read"))?;
                Ok(Bodies::Stdin(BufReader::new(blocking::Unblock::new(stdin))))
            }
        }
    }

    fn message(&self, body: Vec<u8>, client_ip: &str) -> Message {
        let mut m = Message::new(self.topic.clone(), body);
        if let Some(tag) = &self.tag {
            m = m.with_tags(tag.clone());
        }
        if !self.key.is_empty() {
            m = m.with_keys(&self.key);
        }
        if let Some(level) = self.delay {
            m = m.with_delay_level(level);
        }
        // Set here rather than by the producer, so one-way sends have an id to print.
        m.properties
            .insert(keys::UNIQ_KEY.to_owned(), unique_id(client_ip));
        m
    }

    /// Sends every message.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut bodies = self.check(ctx.console)?;
        let producer = Producer::start(ctx.instance.clone(), ProducerConfig::new(&self.group))?;
        // Fail once, clearly, when the NameServer is unreachable or the topic unroutable.
        producer.queues_for(&self.topic).await?;
        let outcome = self.send_all(ctx, &producer, &mut bodies).await;
        producer.shutdown().await;
        outcome
    }

    async fn send_all(&self, ctx: &Ctx<'_>, producer: &Producer, bodies: &mut Bodies) -> Outcome {
        let started = Instant::now();
        let mut report = Report {
            cmd: self,
            console: ctx.console,
            per_message: !(self.summary || self.count.is_some()),
            sent: 0,
            errors: 0,
            early: BTreeMap::new(),
            next: 0,
            progress: Progress::new(ctx.console, self.count.is_some() || self.summary),
        };
        let client_ip = ctx.instance.config().client_ip.clone();
        let (done_tx, done_rx) = async_channel::unbounded();
        let mut in_flight = 0usize;
        let mut index = 0u64;
        while let Some(body) = bodies.next().await? {
            let msg = self.message(body, &client_ip);
            match self.mode {
                Mode::Sync => {
                    let r = producer.send(&msg).await;
                    report.outcome(index, r)?;
                }
                Mode::Oneway => {
                    let id = msg
                        .properties
                        .get(keys::UNIQ_KEY)
                        .cloned()
                        .unwrap_or_default();
                    match producer.send_oneway(&msg).await {
                        Ok(()) => report.oneway(index, &id)?,
                        Err(e) => report.error(index, &e),
                    }
                }
                Mode::Async => {
                    while in_flight >= ASYNC_WINDOW {
                        let (i, r) = done_rx
                            .recv()
                            .await
                            .map_err(|_| failed("async send callback lost"))?;
                        in_flight -= 1;
                        report.arrived(i, r)?;
                    }
                    let tx = done_tx.clone();
                    producer.send_async(msg, move |r| {
                        // The receiver lives until every send has answered.
                        let _ = tx.try_send((index, r));
                    });
                    in_flight += 1;
                }
            }
            index += 1;
        }
        while in_flight > 0 {
            let (i, r) = done_rx
                .recv()
                .await
                .map_err(|_| failed("async send callback lost"))?;
            in_flight -= 1;
            report.arrived(i, r)?;
        }
        if self.mode == Mode::Oneway {
            // One-way frames are queued for the connection's writer; a request
            // answered on the same connections proves they were written.
            ctx.instance.send_heartbeat_to_all_brokers().await;
        }
        report.progress.finish();
        let seconds = started.elapsed().as_secs_f64();
        if !report.per_message {
            let tps = if seconds > 0.0 {
                report.sent as f64 / seconds
            } else {
                0.0
            };
            match self.format {
                Format::Text => ctx.console.line(format_args!(
                    "sent {} messages to {} in {seconds:.3} s ({tps:.1} msg/s, {} mode), {} errors",
                    report.sent,
                    self.topic,
                    mode_name(self.mode),
                    report.errors
                ))?,
                Format::Json => ctx.console.json_line(&serde_json::json!({
                    "topic": self.topic,
                    "mode": mode_name(self.mode),
                    "sent": report.sent,
                    "errors": report.errors,
                    "seconds": seconds,
                }))?,
            }
        }
        if index == 0 {
            ctx.console.warn("no message to send");
        }
        if report.errors > 0 {
            return Err(failed(format!(
                "{} of {index} messages failed",
                report.errors
            )));
        }
        Ok(())
    }
}

/// The `--mode` word.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Sync => "sync",
        Mode::Async => "async",
        Mode::Oneway => "oneway",
    }
}
