//! Master/slave replication, end to end: every broker a separate `mqd`
//! (SYNC_MASTER and SLAVE groups behind NameServers of their own, see
//! `support/ha.rs`).
//!
//! - `two_namesrvs_and_two_sync_groups_serve_producers_and_consumers`: the
//!   cluster the issue describes; every NameServer has the full route, every
//!   slave holds its master's records byte for byte, `mqctl cluster` shows
//!   the slaves and how far behind they are.
//! - `acknowledged_sends_survive_sigkill_of_the_sync_master`: 16 concurrent
//!   senders, SIGKILL of the master at several points; every SEND_OK message
//!   is on the slave byte for byte; the master comes back, the slave catches
//!   up, and both hold the same records.
//! - `a_java_push_consumer_follows_the_slave_and_returns_to_the_master`: the
//!   stock Java client keeps consuming from the slave while the master is
//!   dead, without a restart, and goes back to the master when it returns.
//! - `a_frozen_or_stopped_slave_gives_flush_slave_timeout_and_slave_not_available`:
//!   SIGSTOP and SIGTERM of the slave are reported to the producer, and the
//!   slave catches up once it is back.
//! - `a_slave_ahead_of_a_restarted_master_cuts_back_to_it`: a master that lost
//!   the end of its log (as in a power failure) makes its slave drop what the
//!   master no longer has; then both agree again.
//! - `a_frozen_slave_never_stalls_an_async_master`: sends go on at once
//!   while the slave is frozen, far past what the link's buffers hold.
//! - `a_slave_started_before_its_master_links_within_seconds`: the slave
//!   asks the NameServer again soon, and `mqctl cluster` shows the link.
//! - `a_master_suggests_the_slave_to_a_consumer_far_behind`:
//!   `suggestWhichBrokerId` with and without `slaveReadEnable`.
//! - `a_partition_between_master_and_slave_heals`: the slave in a network
//!   namespace of the test's own behind a veth pair (root needed), the pair
//!   cut and restored.
//!
//! Run: `cargo test -p mq-daemon --test e2e replication::`

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq::connection::RemotingClient;
use mq_protocol::codes::response as resp;
use mq_protocol::frame::SerializeType;
use mq_protocol::message::decode_records;
use nix::sys::signal::Signal;

use crate::support::*;

/// Queues of the test topics.
const QUEUES: i32 = 4;

/// A message whose send was answered SEND_OK.
#[derive(Debug, Clone)]
struct Acked {
    body: Vec<u8>,
    queue_id: i32,
    queue_offset: i64,
    phys: i64,
}

/// The body of message `n` of sender `thread`: unique, between 100 and
/// about 1,100 bytes of printable ASCII (the Java consumer prints them a
/// line each).
fn body(thread: usize, n: usize) -> Vec<u8> {
    let mut body = format!("t{thread}-n{n}|").into_bytes();
    let len = 100 + (n * 37 + thread * 101) % 1000;
    body.extend((0..len).map(|i| b'!' + ((i * 7 + n + thread) % 94) as u8));
    body
}

/// Sends from `senders` threads to `addr` until `stop` is set or a send
/// fails (the master died); returns every SEND_OK message, and counts them
/// in `acked` as they come.
fn send_until_stopped(
    addr: &str,
    topic: &str,
    senders: usize,
    first_thread: usize,
    acked: &Arc<AtomicUsize>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<Acked>>> {
    (first_thread..first_thread + senders)
        .map(|thread| {
            let (addr, topic) = (addr.to_owned(), topic.to_owned());
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                async_io::block_on(async {
                    let client = connect(&addr).await;
                    let mut mine = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Acquire) {
                        let queue_id = ((thread + n) % QUEUES as usize) as i32;
                        let body = body(thread, n);
                        n += 1;
                        let cmd = send_v2(SerializeType::Json, &topic, queue_id, &body, "");
                        let Ok(answer) = client.invoke(cmd, TIMEOUT).await else {
                            break;
                        };
                        match answer.code {
                            resp::SUCCESS => {
                                let s = sent(&answer);
                                mine.push(Acked {
                                    body,
                                    queue_id: s.queue_id,
                                    queue_offset: s.queue_offset,
                                    phys: s.phys,
                                });
                                acked.fetch_add(1, Ordering::AcqRel);
                            }
                            // Stored but not acknowledged: nothing is promised.
                            resp::FLUSH_SLAVE_TIMEOUT | resp::SLAVE_NOT_AVAILABLE => {}
                            _ => break,
                        }
                    }
                    mine
                })
            })
        })
        .collect()
}

/// Sends `body` to queue 0 of `topic` at `addr`; the response code.
fn send_code(addr: &str, topic: &str, body: &str) -> i32 {
    async_io::block_on(async {
        let client = connect(addr).await;
        let cmd = send_v2(SerializeType::Json, topic, 0, body.as_bytes(), "");
        call(&client, cmd).await.code
    })
}

/// The bodies of `records`, as text.
fn bodies_of(records: &[RawRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let stored = decode_records(&r.bytes, false).expect("a valid record");
            String::from_utf8_lossy(stored[0].body).into_owned()
        })
        .collect()
}

/// Waits until `count` sends have been acknowledged, up to 30 s.
fn wait_acked(count: &AtomicUsize, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::Acquire) < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} of {at_least} sends acknowledged after 30 s",
            count.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every record of the topic on the broker at `addr`, by queue, once each
/// queue reaches the end `ends` names (the dispatcher may be a moment behind).
async fn all_records(
    client: &RemotingClient,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, Vec<RawRecord>> {
    let mut out = BTreeMap::new();
    for q in 0..QUEUES {
        let end = ends.get(&q).copied().unwrap_or(0);
        eventually(
            &format!("queue {q} to reach {end}"),
            Duration::from_secs(20),
            || async move { (max_offset(client, topic, q).await >= end).then_some(()) },
        )
        .await;
        out.insert(q, queue_records(client, topic, q).await);
    }
    out
}

/// The queue ends the acknowledged messages imply.
fn ends_of(acked: &[Acked]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for a in acked {
        let end = ends.entry(a.queue_id).or_insert(0);
        *end = (*end).max(a.queue_offset + 1);
    }
    ends
}

/// Every acknowledged message is in `records` at its queue offset and
/// CommitLog offset, with its body byte for byte.
fn assert_all_there(what: &str, acked: &[Acked], records: &BTreeMap<i32, Vec<RawRecord>>) {
    for a in acked {
        let record = records[&a.queue_id]
            .iter()
            .find(|r| r.queue_offset == a.queue_offset)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: acknowledged message at {}:{} is missing",
                    a.queue_id, a.queue_offset
                )
            });
        assert_eq!(record.phys, a.phys, "{what}: CommitLog offset of {a:?}");
        let stored = decode_records(&record.bytes, true).expect("a valid record");
        assert_eq!(stored[0].body, &a.body[..], "{what}: body at {}", a.phys);
    }
}

#[test]
fn two_namesrvs_and_two_sync_groups_serve_producers_and_consumers() {
    let cluster = HaCluster::start("ha-cluster", 2, &["ha-a", "ha-b"], &[]);
    let topic = "HaClusterTopic";
    async_io::block_on(async {
        for group in &cluster.groups {
            create_topic(&*connect(&group.master.addr).await, topic, QUEUES).await;
        }
    });
    // Every NameServer has the whole route: both groups, master and slave.
    for ns in &cluster.namesrv_addrs {
        let instance = mq::ClientInstance::start(mq::ClientConfig::new(ns)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let route = async_io::block_on(instance.fetch_route(topic));
            let complete = route.as_ref().is_ok_and(|r| {
                r.queue_datas.len() == 2
                    && r.broker_datas.len() == 2
                    && r.broker_datas.iter().all(|b| b.broker_addrs.len() == 2)
            });
            if complete {
                break;
            }
            assert!(Instant::now() < deadline, "route on {ns}: {route:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        instance.shutdown();
    }

    // A producer and a consumer through the cluster.
    let instance = mq::ClientInstance::start(mq::ClientConfig::new(&cluster.namesrv())).unwrap();
    let producer =
        mq::Producer::start(instance.clone(), mq::ProducerConfig::new("ha_cluster_p")).unwrap();
    const COUNT: usize = 400;
    let mut sent_to: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..COUNT {
        let result = producer
            .send_blocking(&mq::Message::new(topic, format!("cluster-{i}")))
            .unwrap();
        assert_eq!(result.status, mq::SendStatus::SendOk, "message {i}");
        *sent_to.entry(result.queue.broker_name).or_default() += 1;
    }
    assert_eq!(sent_to.len(), 2, "both groups took sends: {sent_to:?}");
    let got = pull_all(&instance, topic, COUNT);
    let bodies: BTreeSet<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(bodies.len(), COUNT, "every message read back once");
    async_io::block_on(producer.shutdown());
    instance.shutdown();

    // Each slave has its master's records, byte for byte.
    async_io::block_on(async {
        for group in &cluster.groups {
            group.wait_caught_up(Duration::from_secs(20)).await;
            let (master, slave) = (
                connect(&group.master.addr).await,
                connect(&group.slave.addr).await,
            );
            let mut ends = BTreeMap::new();
            for q in 0..QUEUES {
                ends.insert(q, max_offset(&master, topic, q).await);
            }
            let on_master = all_records(&master, topic, &ends).await;
            let on_slave = all_records(&slave, topic, &ends).await;
            assert_eq!(on_master, on_slave, "{}", group.name);
            assert_eq!(
                on_master.values().map(Vec::len).sum::<usize>(),
                sent_to[&group.name]
            );
        }
    });

    // mqctl shows each slave and how far behind it is.
    let out = mqctl(
        Some(&cluster.namesrv()),
        &["cluster", "--format", "json"],
        b"",
    )
    .ok();
    let rows = out.json_lines();
    assert_eq!(rows.len(), 4, "{out:?}");
    for row in &rows {
        if row["brokerId"] == 0 {
            assert_eq!(row["role"], "SYNC_MASTER", "{row}");
        } else {
            assert_eq!(row["role"], "SLAVE", "{row}");
            assert_eq!(row["behindBytes"], 0, "{row}");
            assert_eq!(row["linked"], true, "{row}");
        }
    }
    let out = mqctl(Some(&cluster.namesrv()), &["cluster"], b"").ok();
    let slave_rows = out.stdout.lines().filter(|l| l.contains(" SLAVE ")).count();
    assert_eq!(slave_rows, 2, "{out:?}");
}

#[test]
fn acknowledged_sends_survive_sigkill_of_the_sync_master() {
    // SYNC_FLUSH on both: an acknowledgement means on both disks.
    let mut cluster = HaCluster::start(
        "ha-sigkill",
        1,
        &["ha-k"],
        &[("flushDiskType", "SYNC_FLUSH")],
    );
    let topic = "HaKillTopic";
    let mut all_acked: Vec<Acked> = Vec::new();
    let mut thread_base = 0;
    for (round, kill_at) in [25usize, 400, 1500].into_iter().enumerate() {
        let group = &mut cluster.groups[0];
        let master_addr = group.master.addr.clone();
        async_io::block_on(async {
            create_topic(&*connect(&master_addr).await, topic, QUEUES).await;
        });
        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let senders = send_until_stopped(&master_addr, topic, 16, thread_base, &acked, &stop);
        thread_base += 16;
        wait_acked(&acked, kill_at);
        group.master.mqd.kill();
        stop.store(true, Ordering::Release);
        let mut round_acked = Vec::new();
        for s in senders {
            round_acked.extend(s.join().expect("a sender thread"));
        }
        eprintln!(
            "[ha] round {round}: SIGKILL after {kill_at}; {} sends acknowledged",
            round_acked.len()
        );
        all_acked.extend(round_acked);

        // Everything acknowledged so far is on the slave, byte for byte.
        let slave_addr = group.slave.addr.clone();
        let ends = ends_of(&all_acked);
        let on_slave = async_io::block_on(async {
            all_records(&*connect(&slave_addr).await, topic, &ends).await
        });
        assert_all_there(&format!("slave, round {round}"), &all_acked, &on_slave);

        // The master comes back; the slave catches up; they agree.
        group.master.mqd.start_again();
        async_io::block_on(async {
            group.wait_linked().await;
            group.wait_caught_up(Duration::from_secs(20)).await;
            let (master, slave) = (connect(&master_addr).await, connect(&slave_addr).await);
            let mut ends = BTreeMap::new();
            for q in 0..QUEUES {
                ends.insert(q, max_offset(&master, topic, q).await);
            }
            let on_master = all_records(&master, topic, &ends).await;
            let on_slave = all_records(&slave, topic, &ends).await;
            assert_all_there(&format!("master, round {round}"), &all_acked, &on_master);
            assert_eq!(
                on_master, on_slave,
                "master and slave differ, round {round}"
            );
        });
    }
}

/// A background JVM running the Java suite's `push-watch` scenario: every
/// message it receives, by body.
struct JavaWatcher {
    child: std::process::Child,
    got: Arc<Mutex<BTreeSet<String>>>,
    /// The scenario's state lines seen: STARTED, PAUSED, RESUMED.
    states: Arc<Mutex<Vec<String>>>,
    output: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop_file: std::path::PathBuf,
    pause_file: std::path::PathBuf,
}

impl JavaWatcher {
    fn start(dir: &std::path::Path, namesrv: &str, topic: &str, group: &str) -> JavaWatcher {
        let java = crate::java_compat::require_tool("java");
        let jar = crate::java_compat::compat_jar();
        let stop_file = dir.join("push-watch.stop");
        let pause_file = dir.join("push-watch.pause");
        let mut child = Command::new(java)
            .args(["-Xmx256m", "-XX:+UseSerialGC"])
            .arg(format!(
                "-Drocketmq.client.logRoot={}",
                dir.join("client-logs").display()
            ))
            .arg("-jar")
            .arg(jar)
            .args(["--namesrv", namesrv, "--scenario", "push-watch"])
            .args(["--topic", topic, "--group", group, "--timeout", "55"])
            .args(["--poll-ns-ms", "1000"])
            .arg("--stop-file")
            .arg(&stop_file)
            .arg("--pause-file")
            .arg(&pause_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run java");
        let stdout = child.stdout.take().expect("piped");
        let got = Arc::new(Mutex::new(BTreeSet::new()));
        let states = Arc::new(Mutex::new(Vec::new()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (g, s, o) = (got.clone(), states.clone(), output.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(body) = line.strip_prefix("[compat] GOT ") {
                    g.lock().unwrap().insert(body.to_owned());
                    continue;
                }
                if let Some(state @ ("STARTED" | "PAUSED" | "RESUMED")) =
                    line.strip_prefix("[compat] ")
                {
                    s.lock().unwrap().push(state.to_owned());
                }
                o.lock().unwrap().push(line);
            }
        });
        JavaWatcher {
            child,
            got,
            states,
            output,
            reader: Some(reader),
            stop_file,
            pause_file,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Waits until the scenario has printed `state` `times` times, up to 30 s.
    fn wait_state(&self, state: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self
                .states
                .lock()
                .unwrap()
                .iter()
                .filter(|s| *s == state)
                .count();
            if seen >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Java consumer did not print {state}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Suspends the consumer (no new pulls) until [`resume`](Self::resume).
    fn pause(&self) {
        std::fs::write(&self.pause_file, b"").expect("write the pause file");
        self.wait_state("PAUSED", 1);
    }

    fn resume(&self) {
        std::fs::remove_file(&self.pause_file).expect("remove the pause file");
        self.wait_state("RESUMED", 1);
    }

    /// Waits until every body of `want` has been received, up to `limit`.
    fn wait_received(&self, what: &str, want: &BTreeSet<String>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let missing = want.difference(&self.got.lock().unwrap()).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the Java consumer still misses {missing} of {} messages after {limit:?}:\n{}",
                want.len(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the scenario; it must report OK.
    fn finish(mut self) {
        std::fs::write(&self.stop_file, b"").expect("write the stop file");
        let status = self.child.wait().expect("wait for java");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let output = self.output();
        assert!(
            status.success() && output.contains("SCENARIO push-watch OK"),
            "push-watch ended with {status}:\n{output}"
        );
    }
}

impl Drop for JavaWatcher {
    fn drop(&mut self) {
        // Only after a failure: `finish` waited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `count` messages (bodies `<prefix>-<i>`, round robin over the
/// queues) to `addr`; each must be SEND_OK. Returns the bodies.
async fn send_ok(addr: &str, topic: &str, prefix: &str, count: usize) -> BTreeSet<String> {
    let client = connect(addr).await;
    let mut bodies = BTreeSet::new();
    for i in 0..count {
        let body = format!("{prefix}-{i}");
        let q = (i % QUEUES as usize) as i32;
        send(&client, topic, q, body.as_bytes(), "").await;
        bodies.insert(body);
    }
    bodies
}

#[test]
fn a_java_push_consumer_follows_the_slave_and_returns_to_the_master() {
    let _one_jvm_at_a_time = crate::java_compat::exclusive();
    let mut cluster = HaCluster::start("ha-java", 1, &["ha-j"], &[]);
    let topic = "HaJavaTopic";
    let master_addr = cluster.groups[0].master.addr.clone();
    async_io::block_on(async {
        create_topic(&*connect(&master_addr).await, topic, QUEUES).await;
    });
    std::fs::create_dir_all(cluster.dir.path().join("client-logs")).unwrap();
    let watcher = JavaWatcher::start(cluster.dir.path(), &cluster.namesrv(), topic, "ha_java_g");
    watcher.wait_state("STARTED", 1);
    let slave_addr = cluster.groups[0].slave.addr.clone();
    let early = async_io::block_on(send_ok(&master_addr, topic, "early", 40));
    watcher.wait_received("from the master", &early, Duration::from_secs(30));

    // The consumer falls behind (suspended); 16 senders; SIGKILL of the
    // master mid-stream; the consumer resumes with the master dead.
    watcher.pause();
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = send_until_stopped(&master_addr, topic, 16, 0, &acked, &stop);
    wait_acked(&acked, 300);
    cluster.groups[0].master.mqd.kill();
    stop.store(true, Ordering::Release);
    let mut before_kill = Vec::new();
    for s in senders {
        before_kill.extend(s.join().expect("a sender thread"));
    }
    let want: BTreeSet<String> = before_kill
        .iter()
        .map(|a| String::from_utf8_lossy(&a.body).into_owned())
        .collect();
    watcher.resume();
    watcher.wait_received("with the master dead", &want, Duration::from_secs(40));
    // Pulls parked at the master when it paused may have brought a few; the
    // rest came from the slave.
    let from_slave = async_io::block_on(async {
        let info = runtime_info(&*connect(&slave_addr).await).await.unwrap();
        info["msgGetTotalTodayNow"].parse::<i64>().unwrap()
    });
    assert!(
        from_slave > 0,
        "the slave served nothing, the consumer never read from it"
    );
    eprintln!(
        "[ha] {} acknowledged before SIGKILL; the slave served {from_slave}",
        want.len()
    );

    // The master comes back: the consumer returns to it. Its pulls parked at
    // the slave answer when new messages reach the slave, naming the master
    // as the broker to pull from next; once the client's route (refreshed
    // every second here) lists the master again, the next pulls go there.
    // So batches are sent until the master serves one.
    let group = &mut cluster.groups[0];
    group.master.mqd.start_again();
    async_io::block_on(group.wait_linked());
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 0.. {
        let batch = async_io::block_on(send_ok(&master_addr, topic, &format!("back-{round}"), 40));
        watcher.wait_received("after the restart", &batch, Duration::from_secs(30));
        let served = async_io::block_on(async {
            let info = runtime_info(&*connect(&master_addr).await).await.unwrap();
            info["msgGetTotalTodayNow"].parse::<i64>().unwrap()
        });
        if served >= 40 {
            eprintln!("[ha] the restarted master served batch {round} ({served} messages)");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted master served {served} messages after {round} batches; \
             the consumer did not come back"
        );
    }
    watcher.finish();
}

#[test]
fn a_frozen_or_stopped_slave_gives_flush_slave_timeout_and_slave_not_available() {
    let mut cluster = HaCluster::start(
        "ha-frozen",
        1,
        &["ha-f"],
        &[
            ("slaveTimeout", "1000"),
            ("haSendHeartbeatInterval", "500"),
            ("haHousekeepingInterval", "2000"),
        ],
    );
    let topic = "HaFrozenTopic";
    let group = &mut cluster.groups[0];
    let (master_addr, slave_addr) = (group.master.addr.clone(), group.slave.addr.clone());
    let send_code = |body: &str| send_code(&master_addr, topic, body);
    async_io::block_on(async {
        create_topic(&*connect(&master_addr).await, topic, QUEUES).await;
    });
    assert_eq!(send_code("linked"), resp::SUCCESS);

    // Frozen: the link is up but nothing is acknowledged.
    group.slave.mqd.signal(Signal::SIGSTOP);
    let started = Instant::now();
    assert_eq!(send_code("frozen-1"), resp::FLUSH_SLAVE_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The master gives up on the silent link (haHousekeepingInterval): no
    // slave in step, so no wait at all.
    async_io::block_on(group.wait_unlinked());
    let started = Instant::now();
    assert_eq!(send_code("frozen-2"), resp::SLAVE_NOT_AVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(500));

    // Thawed: it connects again, catches up (the two messages stored but
    // not acknowledged included), and sends are acknowledged again.
    group.slave.mqd.signal(Signal::SIGCONT);
    async_io::block_on(async {
        group.wait_linked().await;
        group.wait_caught_up(Duration::from_secs(20)).await;
    });
    assert_eq!(send_code("thawed"), resp::SUCCESS);
    let on_slave = async_io::block_on(async {
        let slave = connect(&slave_addr).await;
        queue_records(&slave, topic, 0).await
    });
    let bodies = bodies_of(&on_slave);
    assert_eq!(bodies, ["linked", "frozen-1", "frozen-2", "thawed"]);

    // Stopped: SLAVE_NOT_AVAILABLE at once; started again: caught up.
    group.slave.mqd.terminate();
    assert_eq!(send_code("stopped"), resp::SLAVE_NOT_AVAILABLE);
    group.slave.mqd.start_again();
    async_io::block_on(async {
        group.wait_linked().await;
        group.wait_caught_up(Duration::from_secs(20)).await;
    });
    assert_eq!(send_code("restarted"), resp::SUCCESS);
}

#[test]
fn a_slave_ahead_of_a_restarted_master_cuts_back_to_it() {
    let mut cluster = HaCluster::start("ha-cut", 1, &["ha-c"], &[]);
    let topic = "HaCutTopic";
    let group = &mut cluster.groups[0];
    let (master_addr, slave_addr) = (group.master.addr.clone(), group.slave.addr.clone());
    let before = async_io::block_on(async {
        let client = connect(&master_addr).await;
        create_topic(&client, topic, 1).await;
        let mut sent_ = Vec::new();
        for i in 0..20 {
            sent_.push(send(&client, topic, 0, format!("old-{i}").as_bytes(), "").await);
        }
        sent_
    });
    async_io::block_on(group.wait_caught_up(Duration::from_secs(20)));

    // The master stops, and comes back without its last five messages, as
    // after a power failure that lost pages never flushed: the end of its
    // segment is zeros from message 15 on.
    group.master.mqd.terminate();
    let lost_from = before[15].phys;
    let segment = std::fs::read_dir(group.master.data.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .expect("a commit log segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[lost_from as usize..].fill(0);
    std::fs::write(&segment, bytes).unwrap();
    group.master.mqd.start_again();
    async_io::block_on(async {
        group.wait_linked().await;
        let end = group.wait_caught_up(Duration::from_secs(20)).await;
        assert_eq!(end, lost_from, "the slave cut back to the master's end");
    });
    // The log line follows the cut, which the offsets above may show first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let slave_log = loop {
        let text = group.slave.mqd.log_text();
        if text.contains("5 message(s) dropped") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the slave logs what it dropped:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(slave_log.contains(&before[19].msg_id), "{slave_log}");

    // New messages take the lost ones' places, on both.
    async_io::block_on(async {
        let client = connect(&master_addr).await;
        for i in 0..3 {
            let s = send(&client, topic, 0, format!("new-{i}").as_bytes(), "").await;
            assert_eq!(s.queue_offset, 15 + i);
        }
        group.wait_caught_up(Duration::from_secs(20)).await;
        let slave = connect(&slave_addr).await;
        let ends = BTreeMap::from([(0, 18)]);
        let on_master = all_records(&client, topic, &ends).await;
        let on_slave = all_records(&slave, topic, &ends).await;
        assert_eq!(on_master, on_slave);
        let bodies = bodies_of(&on_slave[&0]);
        let mut expect: Vec<String> = (0..15).map(|i| format!("old-{i}")).collect();
        expect.extend((0..3).map(|i| format!("new-{i}")));
        assert_eq!(bodies, expect);
    });
}

#[test]
fn a_frozen_slave_never_stalls_an_async_master() {
    let mut cluster = HaCluster::start_with_role("ha-async", 1, &["ha-s"], "ASYNC_MASTER", &[]);
    let topic = "HaAsyncTopic";
    let group = &mut cluster.groups[0];
    let master_addr = group.master.addr.clone();
    group.slave.mqd.signal(Signal::SIGSTOP);
    // 16 MiB: far more than the link's socket buffers hold, so the master's
    // sender to the slave is stuck the whole time.
    const COUNT: usize = 4096;
    let body = vec![b'x'; 4096];
    let started = Instant::now();
    async_io::block_on(async {
        let client = connect(&master_addr).await;
        create_topic(&client, topic, QUEUES).await;
        for i in 0..COUNT {
            let answer = call(
                &client,
                send_v2(SerializeType::Json, topic, (i % 4) as i32, &body, ""),
            )
            .await;
            assert_eq!(answer.code, resp::SUCCESS, "send {i} to an ASYNC_MASTER");
        }
    });
    let took = started.elapsed();
    eprintln!("[ha] {COUNT} sends of 4 KiB with the slave frozen took {took:?}");
    // Each send answered at once: a stalled send would wait for the 5 s
    // request timeout and fail the loop above.
    group.slave.mqd.signal(Signal::SIGCONT);
    async_io::block_on(async {
        group.wait_linked().await;
        group.wait_caught_up(Duration::from_secs(30)).await;
    });
}

/// A slave started before its master learns the master's address from a
/// later registration answer; it asks again within seconds rather than after
/// the 30 s registration period, and `mqctl cluster` says whether it is
/// linked.
#[test]
fn a_slave_started_before_its_master_links_within_seconds() {
    let mut cluster = HaCluster::start("ha-slave-first", 1, &[], &[]);
    let namesrv = cluster.namesrv();
    let start = |role| {
        start_broker_at(
            &cluster.dir,
            &namesrv,
            "ha-early",
            role,
            "127.0.0.1",
            None,
            &[],
        )
    };
    let slave = start("SLAVE");
    async_io::block_on(eventually(
        "the slave to show in mqctl cluster, not linked",
        Duration::from_secs(10),
        || async {
            let out = mqctl(Some(&namesrv), &["cluster", "--format", "json"], b"");
            let rows = out.json_lines();
            (rows.len() == 1 && rows[0]["role"] == "SLAVE").then(|| {
                assert_eq!(rows[0]["linked"], false, "{out:?}");
            })
        },
    ));
    let master = start("SYNC_MASTER");
    let group = HaGroup {
        name: "ha-early".to_owned(),
        master,
        slave,
    };
    // wait_linked allows 20 s: less than one registration period.
    async_io::block_on(group.wait_linked());
    let out = mqctl(Some(&namesrv), &["cluster", "--format", "json"], b"").ok();
    let rows = out.json_lines();
    assert_eq!(rows.len(), 2, "{out:?}");
    assert_eq!(rows[1]["linked"], true, "{out:?}");
    cluster.groups.push(group);
}

#[test]
fn a_master_suggests_the_slave_to_a_consumer_far_behind() {
    // With accessMessageInMemoryMaxRatio=0 any backlog counts as far behind.
    let cluster = HaCluster::start(
        "ha-suggest",
        1,
        &["ha-g"],
        &[
            ("slaveReadEnable", "true"),
            ("accessMessageInMemoryMaxRatio", "0"),
        ],
    );
    let topic = "HaSuggestTopic";
    let group = &cluster.groups[0];
    async_io::block_on(async {
        let master = connect(&group.master.addr).await;
        create_topic(&master, topic, 1).await;
        for i in 0..10 {
            send(&master, topic, 0, format!("m{i}").as_bytes(), "").await;
        }
        group.wait_caught_up(Duration::from_secs(20)).await;
        let slave = connect(&group.slave.addr).await;
        wait_max_offset(&slave, topic, 0, 10).await;
        let suggested = |answer: &mq_protocol::frame::RemotingCommand| {
            assert_eq!(answer.code, resp::SUCCESS, "{:?}", answer.remark);
            field_i64(answer, "suggestWhichBrokerId")
        };
        // Behind: two messages of ten read, the rest beyond the (zero) limit.
        let mut pull = Pull::new("ha_suggest_g", topic, 0, 0);
        pull.max = 2;
        let answer = call(&master, pull.command(SerializeType::Json)).await;
        assert_eq!(suggested(&answer), 1, "the master suggests the slave");
        // Caught up (nothing left to read): the group's broker, the master.
        pull.offset = 10;
        let answer = call(&slave, pull.command(SerializeType::Json)).await;
        assert_eq!(answer.code, resp::PULL_NOT_FOUND);
        assert_eq!(
            field_i64(&answer, "suggestWhichBrokerId"),
            0,
            "the slave sends a caught-up consumer back"
        );
    });
    // Without slaveReadEnable the master is always suggested.
    let plain = HaCluster::start(
        "ha-suggest-off",
        1,
        &["ha-h"],
        &[("accessMessageInMemoryMaxRatio", "0")],
    );
    let group = &plain.groups[0];
    async_io::block_on(async {
        let master = connect(&group.master.addr).await;
        create_topic(&master, topic, 1).await;
        for i in 0..10 {
            send(&master, topic, 0, format!("m{i}").as_bytes(), "").await;
        }
        let mut pull = Pull::new("ha_suggest_g", topic, 0, 0);
        pull.max = 2;
        let answer = call(&master, pull.command(SerializeType::Json)).await;
        assert_eq!(field_i64(&answer, "suggestWhichBrokerId"), 0);
    });
}

#[test]
fn a_partition_between_master_and_slave_heals() {
    // Declared first, dropped last: after the daemons.
    let net = VethNetns::create();
    let dir = TempDir::new("ha-partition").keep_on_failure();
    let (host, inside) = (net.host_ip.to_string(), net.ns_ip.to_string());
    let ns_port = free_port();
    let namesrv = format!("{host}:{ns_port}");
    let _namesrv = MqdCommand::new(
        "mqd namesrv",
        &["namesrv", "--listen", &namesrv],
        &dir.path().join("namesrv.log"),
    )
    .ready_at(namesrv.parse().unwrap())
    .start();
    let extra = [
        ("slaveTimeout", "1000"),
        ("haSendHeartbeatInterval", "500"),
        ("haHousekeepingInterval", "2000"),
    ];
    let mut group = HaGroup {
        name: "ha-p".into(),
        master: start_broker_at(&dir, &namesrv, "ha-p", "SYNC_MASTER", &host, None, &extra),
        slave: start_broker_at(
            &dir,
            &namesrv,
            "ha-p",
            "SLAVE",
            &inside,
            Some(&net.name),
            &extra,
        ),
    };
    let topic = "HaPartitionTopic";
    let master_addr = group.master.addr.clone();
    let send_code = |body: &str| send_code(&master_addr, topic, body);
    async_io::block_on(async {
        group.wait_linked().await;
        create_topic(&*connect(&master_addr).await, topic, 1).await;
    });
    assert_eq!(send_code("before"), resp::SUCCESS);

    net.cut();
    assert_eq!(send_code("cut-1"), resp::FLUSH_SLAVE_TIMEOUT);
    async_io::block_on(group.wait_unlinked());
    assert_eq!(send_code("cut-2"), resp::SLAVE_NOT_AVAILABLE);

    net.heal();
    async_io::block_on(async {
        group.wait_linked().await;
        group.wait_caught_up(Duration::from_secs(20)).await;
    });
    assert_eq!(send_code("healed"), resp::SUCCESS);
    let on_slave = async_io::block_on(async {
        let slave = connect(&group.slave.addr).await;
        wait_max_offset(&slave, topic, 0, 4).await;
        queue_records(&slave, topic, 0).await
    });
    let bodies = bodies_of(&on_slave);
    assert_eq!(bodies, ["before", "cut-1", "cut-2", "healed"]);
    group.slave.mqd.terminate();
}
