//! `mqctl bench produce|consume`: load with many senders (or consumers) in
//! flight, a line of throughput and latency every second and one summary line
//! at the end. Latencies go into a fixed-size [`Histogram`]. A consume
//! benchmark counts each message once: what a rebalance delivers again is
//! reported as `duplicates` and does not count towards `--count`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argh::FromArgs;
use async_executor::{Executor, Task};
use mq::{
    ClientConfig, ClientError, ClientInstance, Message, MessageExt, Producer, ProducerConfig,
    SendStatus,
};
use mq::{PullConsumer, PullConsumerConfig};

use crate::admin::Ctx;
use crate::console::Console;
use crate::consume::{generated_group, StartAt};
use crate::cpu::{CpuSpan, Process};
use crate::histogram::{Histogram, Snapshot};
use crate::output::{failed, now_ms, usage, Format, Mode, Outcome};
use crate::produce::{generated_body, mode_name};

/// Run length when neither --duration nor --count is given.
const DEFAULT_SECONDS: f64 = 10.0;
/// Longest wait of one consumer poll, so that stops are noticed.
const POLL_SLICE: Duration = Duration::from_millis(200);

/// benchmark producing or consuming
#[derive(FromArgs)]
#[argh(subcommand, name = "bench")]
pub struct BenchCmd {
    #[argh(subcommand)]
    cmd: BenchSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum BenchSub {
    Produce(BenchProduceCmd),
    Consume(BenchConsumeCmd),
}

impl BenchCmd {
    /// Runs the benchmark.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match &self.cmd {
            BenchSub::Produce(c) => c.run(ctx).await,
            BenchSub::Consume(c) => c.run(ctx).await,
        }
    }
}

/// send as fast as possible and report throughput and send latency
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "produce",
    example = "{command_name} --topic BenchmarkTest --duration 30",
    example = "{command_name} --topic BenchmarkTest --count 100000 --size 4096 --threads 64 --mode async",
    note = "Prints a line every second and then `bench produce tps=… mb_per_s=… avg_ms=… p50_ms=… p99_ms=… max_ms=… errors=… not_ok=… client_cpu_us=…` (and `server_cpu_us=…` with --server-pid): CPU time (user + system, from /proc) per message of this process and of the broker over the run. `not_ok` counts sends the broker stored but answered with another status than SEND_OK (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE: not flushed or not on a slave in time); they count in every other figure. Latency is from the send call to the broker's answer (to the write, in oneway mode). Without --duration or --count it runs 10 s. Exits 1 only when no send succeeded."
)]
pub struct BenchProduceCmd {
    /// topic (default BenchmarkTest)
    #[argh(option, short = 't', default = "String::from(\"BenchmarkTest\")")]
    topic: String,
    /// body size in bytes (default 1024)
    #[argh(option, default = "1024")]
    size: usize,
    /// sends in flight at once (default 16)
    #[argh(option, default = "16")]
    threads: usize,
    /// stop after SECONDS
    #[argh(option)]
    duration: Option<f64>,
    /// stop after N messages
    #[argh(option, short = 'c')]
    count: Option<u64>,
    /// send mode: sync (default), async or oneway
    #[argh(option, default = "Mode::Sync")]
    mode: Mode,
    /// producer group (default mqctl_bench_producer)
    #[argh(option, default = "String::from(\"mqctl_bench_producer\")")]
    group: String,
    /// output format: text (default) or json (one object per line)
    #[argh(option, default = "Format::Text")]
    format: Format,
    /// the broker's process id: report its CPU time per message too
    #[argh(option)]
    server_pid: Option<u32>,
}

/// consume as fast as possible and report throughput and end-to-end latency
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "consume",
    example = "{command_name} --topic BenchmarkTest --duration 30",
    example = "{command_name} --topic BenchmarkTest --from first --count 100000 --threads 4",
    note = "Prints a line every second and then `bench consume tps=… mb_per_s=… avg_ms=… p50_ms=… p99_ms=… max_ms=… errors=… duplicates=… client_cpu_us=…` (and `server_cpu_us=…` with --server-pid, CPU time per message as in `bench produce`). Each message counts once, in every figure and against --count; `duplicates` are messages that arrived again (after a rebalance, consumers of a group may re-read what was not committed yet). Latency is end to end: from the message's born timestamp (the producer's clock, ms resolution) to its first arrival. Without --duration or --count it runs 10 s."
)]
pub struct BenchConsumeCmd {
    /// topic (default BenchmarkTest)
    #[argh(option, short = 't', default = "String::from(\"BenchmarkTest\")")]
    topic: String,
    /// consumer group (default: a new group named mqctl_bench_PID_TIME)
    #[argh(option, short = 'g')]
    group: Option<String>,
    /// consumers in the group, each with its own connections (default 1)
    #[argh(option, default = "1")]
    threads: usize,
    /// where a group without offsets starts: first, last (default) or a store time in ms
    #[argh(option, default = "StartAt(mq::ConsumeFrom::LastOffset)")]
    from: StartAt,
    /// stop after SECONDS
    #[argh(option)]
    duration: Option<f64>,
    /// stop once N distinct messages have arrived
    #[argh(option, short = 'c')]
    count: Option<u64>,
    /// output format: text (default) or json (one object per line)
    #[argh(option, default = "Format::Text")]
    format: Format,
    /// the broker's process id: report its CPU time per message too
    #[argh(option)]
    server_pid: Option<u32>,
}

/// The offsets seen of one queue, as disjoint ranges `start -> end`
/// (exclusive). A queue is read mostly in order, so a run of any length
/// keeps a handful of ranges.
#[derive(Default)]
struct OffsetRanges(BTreeMap<i64, i64>);

impl OffsetRanges {
    /// Adds `offset`; false if it was seen before.
    fn insert(&mut self, offset: i64) -> bool {
        let mut start = offset;
        if let Some((&s, &e)) = self.0.range(..=offset).next_back() {
            if offset < e {
                return false;
            }
            if offset == e {
                start = s;
            }
        }
        let mut end = offset + 1;
        if let Some(next_end) = self.0.remove(&end) {
            end = next_end;
        }
        self.0.insert(start, end);
        true
    }
}

/// Which messages a consume benchmark has received, by queue.
#[derive(Default)]
struct Arrivals(Mutex<HashMap<(String, String, i32), OffsetRanges>>);

impl Arrivals {
    /// Whether `m` arrives for the first time (and records it).
    fn first(&self, m: &MessageExt) -> bool {
        self.0
            .lock()
            .expect("arrivals poisoned")
            .entry((m.topic.clone(), m.broker_name.clone(), m.queue_id))
            .or_default()
            .insert(m.queue_offset)
    }
}

/// What the workers share with the reporter.
struct Shared {
    latency: Histogram,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Produce: sends stored but answered with another status than SEND_OK.
    not_ok: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Set when the run is over; workers finish their current operation.
    stop: AtomicBool,
    /// Operations claimed so far, against `--count`.
    claimed: AtomicU64,
    count: Option<u64>,
    /// Consume: what arrived, to tell a message from its redelivery.
    arrivals: Arrivals,
    /// Consume: messages that arrived again.
    duplicates: AtomicU64,
    /// Whether this is a consume run (which reports duplicates).
    consuming: bool,
}

/// The counters a line reports besides latencies.
#[derive(Clone, Copy, Default)]
struct Counts {
    bytes: u64,
    errors: u64,
    /// Produce runs only.
    not_ok: Option<u64>,
    /// Consume runs only.
    duplicates: Option<u64>,
}

impl Counts {
    /// What was counted since `prev`.
    fn since(self, prev: Counts) -> Counts {
        Counts {
            bytes: self.bytes - prev.bytes,
            errors: self.errors - prev.errors,
            not_ok: self.not_ok.map(|n| n - prev.not_ok.unwrap_or(0)),
            duplicates: self.duplicates.map(|d| d - prev.duplicates.unwrap_or(0)),
        }
    }
}

impl Shared {
    fn new(count: Option<u64>, consuming: bool) -> Arc<Self> {
        Arc::new(Shared {
            latency: Histogram::new(),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            not_ok: AtomicU64::new(0),
            first_error: Mutex::new(None),
            stop: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
            count,
            arrivals: Arrivals::default(),
            duplicates: AtomicU64::new(0),
            consuming,
        })
    }

    fn counts(&self) -> Counts {
        Counts {
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            not_ok: (!self.consuming).then(|| self.not_ok.load(Ordering::Relaxed)),
            duplicates: self
                .consuming
                .then(|| self.duplicates.load(Ordering::Relaxed)),
        }
    }

    /// Whether a worker may do one more operation. The last one of `--count`
    /// stops the run: workers that have nothing left to claim would otherwise
    /// wait for work that never comes.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let Some(n) = self.count else {
            return true;
        };
        let claimed = self.claimed.fetch_add(1, Ordering::Relaxed) + 1;
        if claimed >= n {
            self.stop.store(true, Ordering::Relaxed);
        }
        claimed <= n
    }

    fn error(&self, e: &ClientError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().expect("first error poisoned");
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }
}

/// The CPU time of this process and of the broker (`--server-pid`) over a
/// run, to report per message.
struct CpuMeter {
    client: CpuSpan,
    server: Option<CpuSpan>,
}

/// CPU time per message of the client and the server, in µs.
#[derive(Clone, Copy)]
struct CpuPerMessage {
    client: f64,
    server: Option<f64>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>) -> Outcome<Self> {
        let server = server_pid
            .map(|pid| CpuSpan::start(Process::Pid(pid)))
            .transpose()
            .map_err(|e| usage(format!("--server-pid: {e}")))?;
        Ok(CpuMeter {
            client: CpuSpan::start(Process::This).map_err(failed)?,
            server,
        })
    }

    /// What each of `messages` cost; the server's figure is left out (with a
    /// warning) if its process is gone.
    fn per_message(&self, console: &Console, messages: u64) -> Outcome<CpuPerMessage> {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
        let server = match self.server.map(|s| s.used()) {
            None => None,
            Some(Ok(d)) => Some(per(d)),
            Some(Err(e)) => {
                console.warn(format!("server CPU time: {e}"));
                None
            }
        };
        Ok(CpuPerMessage {
            client: per(self.client.used().map_err(failed)?),
            server,
        })
    }
}

/// `--duration` and `--count` checked, with the default run length.
fn run_length(duration: Option<f64>, count: Option<u64>) -> Outcome<Option<Duration>> {
    if count == Some(0) {
        return Err(usage("--count must be at least 1"));
    }
    match (duration, count) {
        (None, None) => Ok(Some(Duration::from_secs_f64(DEFAULT_SECONDS))),
        (None, Some(_)) => Ok(None),
        (Some(d), _) if d.is_finite() && d > 0.0 && d < 1e9 => Ok(Some(Duration::from_secs_f64(d))),
        (Some(_), _) => Err(usage("--duration must be a positive number of seconds")),
    }
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// Reports every second until every worker is done, then the summary line.
async fn report(
    console: &Console,
    what: &str,
    format: Format,
    shared: &Shared,
    done: async_channel::Receiver<()>,
    run_for: Option<Duration>,
    cpu: &CpuMeter,
) -> Outcome<u64> {
    let started = Instant::now();
    let mut prev = shared.latency.snapshot();
    let mut prev_counts = Counts::default();
    let mut tick = started;
    let mut second = 0u64;
    loop {
        tick += Duration::from_secs(1);
        let wake = match run_for {
            Some(d) => tick.min(started + d),
            None => tick,
        };
        let finished = futures_lite::future::or(async { done.recv().await.is_err() }, async {
            async_io::Timer::at(wake).await;
            false
        })
        .await;
        if finished {
            break;
        }
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            shared.stop.store(true, Ordering::Relaxed);
            // Let operations in flight finish; they count.
            while done.recv().await.is_ok() {}
            break;
        }
        second += 1;
        let now = shared.latency.snapshot();
        let interval = now.since(&prev);
        let counts = shared.counts();
        print_line(
            console,
            format,
            Some(second),
            what,
            &interval,
            1.0,
            counts.since(prev_counts),
            None,
        )?;
        prev = now;
        prev_counts = counts;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let all = shared.latency.snapshot();
    let cpu = cpu.per_message(console, all.total)?;
    print_line(
        console,
        format,
        None,
        what,
        &all,
        elapsed,
        shared.counts(),
        Some(cpu),
    )?;
    if let Some(e) = shared
        .first_error
        .lock()
        .expect("first error poisoned")
        .as_ref()
    {
        console.warn(format!("first error: {e}"));
    }
    Ok(all.total)
}

/// One per-second line (`second` set) or the summary line (with `cpu`).
#[allow(clippy::too_many_arguments)]
fn print_line(
    console: &Console,
    format: Format,
    second: Option<u64>,
    what: &str,
    s: &Snapshot,
    seconds: f64,
    counts: Counts,
    cpu: Option<CpuPerMessage>,
) -> Outcome {
    let Counts {
        bytes,
        errors,
        not_ok,
        duplicates,
    } = counts;
    let seconds = seconds.max(1e-9);
    let tps = s.total as f64 / seconds;
    let mbps = bytes as f64 / (1024.0 * 1024.0) / seconds;
    match format {
        Format::Text => {
            let head = match second {
                Some(n) => format!("[{n:>4}s]"),
                None => format!("bench {what}"),
            };
            let dups = duplicates.map_or_else(String::new, |d| format!(" duplicates={d}"));
            let not_ok = not_ok.map_or_else(String::new, |n| format!(" not_ok={n}"));
            let cpu = cpu.map_or_else(String::new, |c| {
                let server = c
                    .server
                    .map_or_else(String::new, |s| format!(" server_cpu_us={s:.1}"));
                format!(" client_cpu_us={:.1}{server}", c.client)
            });
            console.line(format_args!(
                "{head} tps={tps:.1} mb_per_s={mbps:.3} avg_ms={} p50_ms={} p99_ms={} max_ms={} errors={errors}{not_ok}{dups}{cpu}",
                ms(s.mean()),
                ms(s.quantile(0.5) as f64),
                ms(s.quantile(0.99) as f64),
                ms(s.max() as f64),
            ))
        }
        Format::Json => {
            let mut v = serde_json::json!({
                "bench": what,
                "tps": tps,
                "mb_per_s": mbps,
                "avg_ms": s.mean() / 1000.0,
                "p50_ms": s.quantile(0.5) as f64 / 1000.0,
                "p99_ms": s.quantile(0.99) as f64 / 1000.0,
                "max_ms": s.max() as f64 / 1000.0,
                "errors": errors,
                "messages": s.total,
            });
            if let Some(n) = not_ok {
                v["not_ok"] = n.into();
            }
            if let Some(d) = duplicates {
                v["duplicates"] = d.into();
            }
            if let Some(c) = cpu {
                v["client_cpu_us"] = c.client.into();
                if let Some(s) = c.server {
                    v["server_cpu_us"] = s.into();
                }
            }
            match second {
                Some(n) => v["second"] = n.into(),
                None => {
                    v["summary"] = true.into();
                    v["seconds"] = seconds.into();
                }
            }
            console.json_line(&v)
        }
    }
}

/// Runs `workers` side by side on an executor of this run, polled while the
/// report runs, until every one has finished; returns the report's count.
async fn run_workers<F>(
    console: &Console,
    what: &str,
    format: Format,
    shared: &Shared,
    workers: impl IntoIterator<Item = F>,
    run_for: Option<Duration>,
    cpu: &CpuMeter,
) -> Outcome<u64>
where
    F: Future<Output = ()> + Send,
{
    // Closed when the last worker is done.
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let ex = Executor::new();
    let tasks: Vec<Task<()>> = workers
        .into_iter()
        .map(|worker| {
            let done = done_tx.clone();
            ex.spawn(async move {
                worker.await;
                drop(done);
            })
        })
        .collect();
    drop(done_tx);
    let counted = ex
        .run(report(console, what, format, shared, done_rx, run_for, cpu))
        .await;
    ex.run(async {
        for task in tasks {
            task.await;
        }
    })
    .await;
    counted
}

fn check_threads(threads: usize) -> Outcome {
    if !(1..=10_000).contains(&threads) {
        return Err(usage("--threads must be 1..10000"));
    }
    Ok(())
}

impl BenchProduceCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_threads(self.threads)?;
        if self.size == 0 || self.size > 4 * 1024 * 1024 {
            return Err(usage("--size must be 1..4194304 bytes"));
        }
        let run_for = run_length(self.duration, self.count)?;
        let producer = Producer::start(ctx.instance.clone(), ProducerConfig::new(&self.group))?;
        producer.queues_for(&self.topic).await?;
        let shared = Shared::new(self.count, false);
        let template = Message::new(self.topic.clone(), generated_body(self.size));
        let cpu = CpuMeter::start(self.server_pid)?;
        let workers = (0..self.threads).map(|_| {
            produce_worker(
                producer.clone(),
                shared.clone(),
                template.clone(),
                self.mode,
            )
        });
        let sent = run_workers(
            ctx.console,
            "produce",
            self.format,
            &shared,
            workers,
            run_for,
            &cpu,
        )
        .await;
        if self.mode == Mode::Oneway {
            // Make sure queued one-way frames reach the broker before exiting.
            ctx.instance.send_heartbeat_to_all_brokers().await;
        }
        producer.shutdown().await;
        if sent? == 0 {
            return Err(failed(format!(
                "no message was sent ({} mode)",
                mode_name(self.mode)
            )));
        }
        Ok(())
    }
}

async fn produce_worker(producer: Producer, shared: Arc<Shared>, template: Message, mode: Mode) {
    let size = template.body.len() as u64;
    while shared.claim() {
        let msg = template.clone();
        let started = Instant::now();
        let outcome = match mode {
            Mode::Sync => producer.send(&msg).await.map(|r| r.status),
            Mode::Oneway => producer
                .send_oneway(&msg)
                .await
                .map(|()| SendStatus::SendOk),
            Mode::Async => {
                let (tx, rx) = async_channel::bounded(1);
                producer.send_async(msg, move |r| {
                    // The worker waits on the other end.
                    let _ = tx.try_send(r.map(|r| r.status));
                });
                rx.recv().await.unwrap_or(Err(ClientError::Closed))
            }
        };
        match outcome {
            Ok(status) => {
                if status != SendStatus::SendOk {
                    shared.not_ok.fetch_add(1, Ordering::Relaxed);
                }
                shared.latency.record(started.elapsed().as_micros() as u64);
                shared.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(e) => shared.error(&e),
        }
    }
}

impl BenchConsumeCmd {
    async fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        check_threads(self.threads)?;
        if self.threads > 256 {
            return Err(usage("--threads must be 1..256 for consume"));
        }
        let run_for = run_length(self.duration, self.count)?;
        ctx.instance.fetch_route(&self.topic).await?;
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| generated_group("mqctl_bench"));
        let shared = Shared::new(self.count, true);
        let mut consumers = Vec::new();
        for i in 0..self.threads {
            // One client per consumer: the group's rebalance tells clients apart
            // by client id.
            let mut config = ClientConfig::new(&ctx.namesrv);
            config.instance_name = format!("{}-{i}", config.instance_name);
            config.credentials = ctx.credentials.clone();
            let instance = ClientInstance::start(config)?;
            let mut cc = PullConsumerConfig::new(group.clone());
            cc.consume_from = self.from.0;
            let consumer = PullConsumer::start(instance.clone(), cc)?;
            consumer.subscribe(&self.topic, "*").await?;
            consumers.push((instance, Arc::new(consumer)));
        }
        let cpu = CpuMeter::start(self.server_pid)?;
        let workers = consumers
            .iter()
            .map(|(_, c)| consume_worker(c.clone(), shared.clone()));
        let received = run_workers(
            ctx.console,
            "consume",
            self.format,
            &shared,
            workers,
            run_for,
            &cpu,
        )
        .await;
        for (instance, consumer) in &consumers {
            consumer.shutdown().await;
            instance.shutdown();
        }
        if received? == 0 {
            ctx.console.warn("no message received");
        }
        Ok(())
    }
}

async fn consume_worker(consumer: Arc<PullConsumer>, shared: Arc<Shared>) {
    'run: while !shared.stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL_SLICE).await {
            Ok(batch) => {
                let now = now_ms();
                for m in batch {
                    if shared.stop.load(Ordering::Relaxed) {
                        break 'run;
                    }
                    if !shared.arrivals.first(&m) {
                        shared.duplicates.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if !shared.claim() {
                        break 'run;
                    }
                    let latency_ms = (now - m.born_timestamp).max(0) as u64;
                    shared.latency.record(latency_ms * 1000);
                    shared
                        .bytes
                        .fetch_add(m.body.len() as u64, Ordering::Relaxed);
                }
            }
            Err(e) => {
                shared.error(&e);
                async_io::Timer::after(POLL_SLICE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_ranges_tell_new_offsets_from_repeats() {
        let mut r = OffsetRanges::default();
        assert!(r.insert(5));
        assert!(r.insert(7));
        assert!(!r.insert(5));
        assert!(r.insert(6), "fills the gap");
        assert_eq!(r.0.iter().collect::<Vec<_>>(), [(&5, &8)], "merged");
        assert!(r.insert(4));
        assert!(r.insert(8));
        assert_eq!(r.0.iter().collect::<Vec<_>>(), [(&4, &9)]);
        for o in 4..9 {
            assert!(!r.insert(o));
        }
        assert!(r.insert(0));
        assert!(!r.insert(0));
        assert_eq!(r.0.len(), 2);
    }

    #[test]
    fn the_last_claim_of_a_count_stops_the_run() {
        let shared = Shared::new(Some(2), false);
        assert!(shared.claim());
        assert!(!shared.stop.load(Ordering::Relaxed));
        assert!(shared.claim());
        assert!(
            shared.stop.load(Ordering::Relaxed),
            "nothing is left to wait for"
        );
        assert!(!shared.claim());
        assert!(Shared::new(None, true).claim());
    }
}
