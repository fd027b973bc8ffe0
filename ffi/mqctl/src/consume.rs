//! `mqctl consume`: receives messages with a lite pull consumer and prints
//! them, one a line (text or JSON); with `--count N` it stops after N and
//! commits exactly up to the last message printed.

use std::str::FromStr;
use std::time::{Duration, Instant};

use argh::FromArgs;
use mq::MessageExt;
use mq::{ConsumeFrom, PullConsumer, PullConsumerConfig};
use mq_protocol::body::{MessageModel, MessageQueue};

use crate::admin::Ctx;
use crate::console::Console;
use crate::output::{failed, message_json, message_line, now_ms, usage, Format, Outcome, Progress};

/// Longest wait of one poll, so that deadlines are checked.
const POLL_SLICE: Duration = Duration::from_millis(500);

/// receive messages and print them, one a line
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "consume",
    example = "{command_name} --topic TopicTest --from first --count 10",
    example = "{command_name} --topic TopicTest --group my_group --tag 'TagA || TagB' --format json",
    example = "{command_name} --topic TopicTest --broadcast --timeout 30",
    note = "Text lines are `msgId=… queue=broker:queueId offset=… tags=… keys=k1,k2 body=…`, with `hex=…` instead of `body=` when the body is not UTF-8; JSON lines carry every field, the body as text (bodyEncoding utf8) or hex (bodyEncoding hex). --from applies only to queues the group has no offset for. Without --count or --timeout it runs until interrupted."
)]
pub struct ConsumeCmd {
    /// topic to read
    #[argh(option, short = 't')]
    topic: String,
    /// consumer group (default: a new group named mqctl_consumer_PID_TIME)
    #[argh(option, short = 'g')]
    group: Option<String>,
    /// tag expression: `*` (default) or `TagA || TagB`
    #[argh(option, default = "String::from(\"*\")")]
    tag: String,
    /// where a group without offsets starts: first, last (default) or a store time in ms
    #[argh(option, default = "StartAt(ConsumeFrom::LastOffset)")]
    from: StartAt,
    /// broadcasting: this consumer reads every queue, offsets kept locally
    #[argh(switch)]
    broadcast: bool,
    /// stop after N messages (and commit up to the last one printed)
    #[argh(option, short = 'c')]
    count: Option<u64>,
    /// stop after SECONDS; with --count, fail if fewer than N arrived
    #[argh(option)]
    timeout: Option<f64>,
    /// output format: text (default) or json (one object per message a line)
    #[argh(option, default = "Format::Text")]
    format: Format,
}

/// `--from`: `first`, `last` or a timestamp in ms.
#[derive(Debug, Clone, Copy)]
pub struct StartAt(pub ConsumeFrom);

impl FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first" => Ok(StartAt(ConsumeFrom::FirstOffset)),
            "last" => Ok(StartAt(ConsumeFrom::LastOffset)),
            _ => match s.parse::<i64>() {
                Ok(ms) if ms >= 0 => Ok(StartAt(ConsumeFrom::Timestamp(ms))),
                _ => Err("expected first, last or a timestamp in ms".into()),
            },
        }
    }
}

/// A group name no one else uses.
pub fn generated_group(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), now_ms())
}

/// A `--timeout` in seconds as a deadline.
pub fn deadline(timeout: Option<f64>) -> Outcome<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => {
            Ok(Some(Instant::now() + Duration::from_secs_f64(t)))
        }
        Some(_) => Err(usage("--timeout must be a positive number of seconds")),
    }
}

impl ConsumeCmd {
    /// Receives and prints.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        if self.topic.is_empty() {
            return Err(usage("--topic must not be empty"));
        }
        if self.count == Some(0) {
            return Err(usage("--count must be at least 1"));
        }
        let deadline = deadline(self.timeout)?;
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| generated_group("mqctl_consumer"));
        let mut config = PullConsumerConfig::new(group);
        config.consume_from = self.from.0;
        config.message_model = if self.broadcast {
            MessageModel::Broadcasting
        } else {
            MessageModel::Clustering
        };
        // Interrupted runs lose at most a second of progress.
        config.auto_commit_interval = Duration::from_secs(1);
        if let Some(n) = self.count {
            config.pull_batch_size = i32::try_from(n.min(32)).unwrap_or(32);
        }
        // Make a missing topic or an unreachable NameServer one clear error.
        ctx.instance.fetch_route(&self.topic).await?;
        let consumer = PullConsumer::start(ctx.instance.clone(), config)?;
        let outcome = self.receive(ctx.console, &consumer, deadline).await;
        consumer.shutdown().await;
        outcome
    }

    async fn receive(
        &self,
        console: &Console,
        consumer: &PullConsumer,
        deadline: Option<Instant>,
    ) -> Outcome {
        consumer.subscribe(&self.topic, &self.tag).await?;
        let mut progress = Progress::new(console, !console.terminals().stdout);
        let mut received = 0u64;
        loop {
            if self.count.is_some_and(|n| received >= n) {
                return Ok(());
            }
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        progress.finish();
                        return match self.count {
                            Some(n) => Err(failed(format!(
                                "timed out after receiving {received} of {n} messages"
                            ))),
                            None => Ok(()),
                        };
                    }
                    left.min(POLL_SLICE)
                }
                None => POLL_SLICE,
            };
            let batch = consumer.poll(wait).await?;
            let wanted = self
                .count
                .map_or(batch.len(), |n| batch.len().min((n - received) as usize));
            for m in &batch[..wanted] {
                if let Err(e) = self.print(console, m) {
                    // Whoever reads stopped: leave this one for the next run.
                    rewind(console, consumer, m).await;
                    return Err(e);
                }
                received += 1;
            }
            if let Some(first_unprinted) = batch.get(wanted) {
                rewind(console, consumer, first_unprinted).await;
            }
            let count = self.count;
            progress.update(|| match count {
                Some(n) => format!("received {received}/{n}"),
                None => format!("received {received}"),
            });
        }
    }

    fn print(&self, console: &Console, m: &MessageExt) -> Outcome {
        match self.format {
            Format::Text => console.line(message_line(m)),
            Format::Json => console.json_line(&message_json(m)),
        }
    }
}

/// Moves the queue of a message polled but not printed back to it, so that
/// the commit at shutdown leaves it for the next consumer.
async fn rewind(console: &Console, consumer: &PullConsumer, m: &MessageExt) {
    let mq = MessageQueue::new(m.topic.clone(), m.broker_name.clone(), m.queue_id);
    if let Err(e) = consumer.seek(&mq, m.queue_offset).await {
        console.warn(format!(
            "cannot leave offset {} of {}:{} uncommitted: {e}",
            m.queue_offset, m.broker_name, m.queue_id
        ));
    }
}
