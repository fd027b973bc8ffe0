//! The Rust consumers against a real `mqd standalone`: the lite pull consumer
//! (subscribe, assign, seek, commit, rebalance), the push consumer
//! (concurrent, orderly, retry, broadcasting, shutdown, take-over).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq::{
    ClientConfig, ClientInstance, ConsumeFrom, ConsumeStatus, Message, MessageExt, Producer,
    ProducerConfig, PullConsumer, PullConsumerConfig, PushConsumer, PushConsumerConfig,
};
use mq_protocol::body::{MessageModel, MessageQueue};

use crate::support::*;

/// Polls `check` until it holds or `secs` pass.
fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn instance(daemon: &Standalone) -> Arc<ClientInstance> {
    ClientInstance::start(ClientConfig::new(&daemon.namesrv)).unwrap()
}

fn named_instance(daemon: &Standalone, name: &str) -> Arc<ClientInstance> {
    let mut config = ClientConfig::new(&daemon.namesrv);
    config.instance_name = name.to_owned();
    ClientInstance::start(config).unwrap()
}

/// A producer.
fn producer(instance: &Arc<ClientInstance>) -> Producer {
    Producer::start(
        instance.clone(),
        ProducerConfig::new("it_consumer_producer"),
    )
    .unwrap()
}

/// Sends `n` messages `<prefix>-<i>` (tag `tag` if given); waits until the
/// topic has a route, so consumers started next find it.
fn produce(producer: &Producer, topic: &str, prefix: &str, n: usize, tag: Option<&str>) {
    for i in 0..n {
        let mut msg = Message::new(topic, format!("{prefix}-{i}"));
        if let Some(t) = tag {
            msg = msg.with_tags(t);
        }
        producer.send_blocking(&msg).unwrap();
    }
}

fn wait_for_route(instance: &Arc<ClientInstance>, topic: &str) {
    wait_until(20, "the topic's route", || {
        async_io::block_on(instance.fetch_route(topic)).is_ok()
    });
}

fn body(m: &MessageExt) -> String {
    String::from_utf8(m.body.clone()).unwrap()
}

/// Polls until `n` distinct bodies arrived (or `secs` pass); returns them all.
fn poll_bodies(consumer: &PullConsumer, n: usize, secs: u64) -> Vec<MessageExt> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut all = Vec::new();
    let mut seen = BTreeSet::new();
    while seen.len() < n && Instant::now() < deadline {
        for m in consumer.poll_blocking(Duration::from_millis(200)).unwrap() {
            seen.insert(body(&m));
            all.push(m);
        }
    }
    all
}

/// A listener that records every message (topic, body, reconsume times).
type Seen = Arc<Mutex<Vec<MessageExt>>>;

fn recording() -> (Seen, mq::Listener) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let listener: mq::Listener = Arc::new(move |msgs: &[MessageExt]| {
        s.lock().unwrap().extend(msgs.iter().cloned());
        ConsumeStatus::Success
    });
    (seen, listener)
}

fn distinct_bodies(seen: &Seen) -> BTreeSet<String> {
    seen.lock().unwrap().iter().map(body).collect()
}

#[test]
fn lite_pull_subscribe_reads_every_message_and_filters_tags() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    produce(&p, "LiteAll", "m", 40, None);
    produce(&p, "LiteTags", "a", 5, Some("TagA"));
    produce(&p, "LiteTags", "b", 5, Some("TagB"));
    produce(&p, "LiteTags", "c", 5, Some("TagC"));
    wait_for_route(&i, "LiteAll");
    wait_for_route(&i, "LiteTags");

    let mut config = PullConsumerConfig::new("lite_all");
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PullConsumer::start(i.clone(), config).unwrap();
    async_io::block_on(c.subscribe("LiteAll", "*")).unwrap();
    let got = poll_bodies(&c, 40, 20);
    let bodies: BTreeSet<String> = got.iter().map(body).collect();
    assert_eq!(bodies.len(), 40, "every message: {bodies:?}");
    assert_eq!(got.len(), 40, "each once");
    assert_eq!(async_io::block_on(c.assignment()).len(), 4);
    assert!(got.iter().all(|m| m.topic == "LiteAll"));

    let mut config = PullConsumerConfig::new("lite_tags");
    config.consume_from = ConsumeFrom::FirstOffset;
    let t = PullConsumer::start(i.clone(), config).unwrap();
    async_io::block_on(t.subscribe("LiteTags", "TagA || TagB")).unwrap();
    let got = poll_bodies(&t, 10, 20);
    // Anything else would have come with these batches; look a bit longer.
    let mut got: Vec<String> = got.iter().map(body).collect();
    got.extend(
        t.poll_blocking(Duration::from_millis(300))
            .unwrap()
            .iter()
            .map(body),
    );
    got.sort();
    let mut want: Vec<String> = (0..5)
        .flat_map(|n| [format!("a-{n}"), format!("b-{n}")])
        .collect();
    want.sort();
    assert_eq!(got, want);

    async_io::block_on(c.shutdown());
    async_io::block_on(t.shutdown());
    assert!(c.poll_blocking(Duration::from_millis(10)).is_err());
    i.shutdown();
}

#[test]
fn lite_pull_assign_seek_and_seek_to_timestamp() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "LiteSeek";
    for n in 0..5 {
        async_io::block_on(p.send_ordered(&Message::new(topic, format!("s-{n}")), "k")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    let middle = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(30));
    let mut queue = None;
    for n in 5..10 {
        let r = async_io::block_on(p.send_ordered(&Message::new(topic, format!("s-{n}")), "k"))
            .unwrap();
        queue = Some(r.queue);
    }
    let mq = queue.unwrap();
    wait_for_route(&i, topic);

    let mut config = PullConsumerConfig::new("lite_seek");
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PullConsumer::start(i.clone(), config).unwrap();
    async_io::block_on(c.assign(vec![mq.clone()])).unwrap();
    assert_eq!(async_io::block_on(c.assignment()), vec![mq.clone()]);
    let got = poll_bodies(&c, 10, 20);
    let offsets: Vec<i64> = got.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());

    async_io::block_on(c.seek(&mq, 7)).unwrap();
    let got = poll_bodies(&c, 3, 10);
    assert_eq!(got.first().map(|m| m.queue_offset), Some(7));
    assert_eq!(got.len(), 3);

    async_io::block_on(c.seek_to_timestamp(&mq, middle)).unwrap();
    let got = poll_bodies(&c, 5, 10);
    assert_eq!(got.first().map(body).as_deref(), Some("s-5"));

    assert!(
        async_io::block_on(c.seek(&mq, 1000)).is_err(),
        "past the end"
    );
    let other = MessageQueue::new(topic, mq.broker_name.clone(), mq.queue_id + 1);
    assert!(
        async_io::block_on(c.seek(&other, 0)).is_err(),
        "not assigned"
    );
    // Assign and subscribe do not mix.
    assert!(async_io::block_on(c.subscribe(topic, "*")).is_err());
    async_io::block_on(c.shutdown());
    i.shutdown();
}

#[test]
fn lite_pull_commit_is_where_the_group_resumes() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "LiteCommit";
    produce(&p, topic, "old", 20, None);
    wait_for_route(&i, topic);

    let mut config = PullConsumerConfig::new("lite_commit");
    config.auto_commit = false;
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PullConsumer::start(i.clone(), config.clone()).unwrap();
    async_io::block_on(c.subscribe(topic, "*")).unwrap();
    let got = poll_bodies(&c, 20, 20);
    assert_eq!(got.len(), 20);
    async_io::block_on(c.commit()).unwrap();
    let mut last: BTreeMap<MessageQueue, i64> = BTreeMap::new();
    for m in &got {
        let q = MessageQueue::new(topic, m.broker_name.clone(), m.queue_id);
        let e = last.entry(q).or_insert(0);
        *e = (*e).max(m.queue_offset + 1);
    }
    for (q, next) in &last {
        assert_eq!(
            async_io::block_on(c.committed(q)).unwrap(),
            Some(*next),
            "{q:?}"
        );
    }
    async_io::block_on(c.shutdown());

    // A new consumer of the group starts where the commit left off.
    produce(&p, topic, "new", 5, None);
    let i2 = instance(&daemon);
    let c2 = PullConsumer::start(i2.clone(), config).unwrap();
    async_io::block_on(c2.subscribe(topic, "*")).unwrap();
    let mut got: Vec<String> = poll_bodies(&c2, 5, 20).iter().map(body).collect();
    got.extend(
        c2.poll_blocking(Duration::from_millis(300))
            .unwrap()
            .iter()
            .map(body),
    );
    got.sort();
    assert_eq!(got, (0..5).map(|n| format!("new-{n}")).collect::<Vec<_>>());
    async_io::block_on(c2.shutdown());
    i.shutdown();
    i2.shutdown();
}

#[test]
fn two_lite_consumers_split_the_queues() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "LiteSplit";
    produce(&p, topic, "m", 1, None);
    wait_for_route(&i, topic);
    let (i1, i2) = (instance(&daemon), instance(&daemon));
    let c1 = PullConsumer::start(i1.clone(), PullConsumerConfig::new("lite_split")).unwrap();
    let c2 = PullConsumer::start(i2.clone(), PullConsumerConfig::new("lite_split")).unwrap();
    async_io::block_on(c1.subscribe(topic, "*")).unwrap();
    async_io::block_on(c2.subscribe(topic, "*")).unwrap();
    wait_until(10, "the queues to be split", || {
        let a: BTreeSet<MessageQueue> = async_io::block_on(c1.assignment()).into_iter().collect();
        let b: BTreeSet<MessageQueue> = async_io::block_on(c2.assignment()).into_iter().collect();
        a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
    });
    async_io::block_on(c1.shutdown());
    async_io::block_on(c2.shutdown());
    for x in [i, i1, i2] {
        x.shutdown();
    }
}

#[test]
fn push_concurrent_receives_every_message() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushAll";
    produce(&p, topic, "m", 50, None);
    wait_for_route(&i, topic);
    let (seen, listener) = recording();
    let mut config = PushConsumerConfig::new("push_all");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_batch_max_size = 4;
    let c = PushConsumer::start(
        i.clone(),
        config,
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    wait_until(20, "every message", || distinct_bodies(&seen).len() == 50);
    // And those sent while it runs.
    produce(&p, topic, "live", 10, None);
    wait_until(20, "the live messages", || {
        distinct_bodies(&seen).len() == 60
    });
    c.shutdown_blocking();
    assert_eq!(seen.lock().unwrap().len(), 60, "each once");
    i.shutdown();
}

#[test]
fn later_redelivers_through_the_retry_topic() {
    let levels = vec!["1s"; 18].join(" ");
    let daemon = Standalone::start_with(&["--messageDelayLevel", &levels]);
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushRetry";
    produce(&p, topic, "r", 3, None);
    wait_for_route(&i, topic);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let listener: mq::Listener = Arc::new(move |msgs: &[MessageExt]| {
        s.lock().unwrap().extend(msgs.iter().cloned());
        if msgs.iter().any(|m| m.reconsume_times == 0) {
            ConsumeStatus::Later
        } else {
            ConsumeStatus::Success
        }
    });
    let mut config = PushConsumerConfig::new("push_retry");
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PushConsumer::start(
        i.clone(),
        config,
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    wait_until(40, "the redeliveries", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|m| m.reconsume_times == 1)
            .count()
            >= 3
    });
    let seen = seen.lock().unwrap().clone();
    for m in seen.iter().filter(|m| m.reconsume_times == 1) {
        assert_eq!(m.topic, topic, "the original topic is restored");
        assert_eq!(
            m.properties.get("RETRY_TOPIC").map(String::as_str),
            Some(topic)
        );
    }
    let retried: BTreeSet<String> = seen
        .iter()
        .filter(|m| m.reconsume_times == 1)
        .map(body)
        .collect();
    assert_eq!(retried.len(), 3);
    c.shutdown_blocking();
    i.shutdown();
}

#[test]
fn push_orderly_delivers_a_queue_in_order() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushOrderly";
    for n in 0..30 {
        async_io::block_on(p.send_ordered(&Message::new(topic, format!("{n}")), "one-key"))
            .unwrap();
    }
    wait_for_route(&i, topic);
    let seen: Seen = Arc::default();
    // Every call: the batch, its reconsume counts, and whether it succeeded.
    type Calls = Arc<Mutex<Vec<(Vec<u32>, Vec<i32>, bool)>>>;
    let calls: Calls = Arc::default();
    let busy = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let failed_once = Arc::new(AtomicBool::new(false));
    let (s, c, b, o, f) = (
        seen.clone(),
        calls.clone(),
        busy.clone(),
        overlaps.clone(),
        failed_once.clone(),
    );
    let listener: mq::Listener = Arc::new(move |msgs: &[MessageExt]| {
        if b.swap(true, Ordering::SeqCst) {
            o.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(2));
        let numbers: Vec<u32> = msgs.iter().map(|m| body(m).parse().unwrap()).collect();
        let counts: Vec<i32> = msgs.iter().map(|m| m.reconsume_times).collect();
        // The batch holding message 10 is refused once.
        let ok = !numbers.contains(&10) || f.swap(true, Ordering::SeqCst);
        if ok {
            s.lock().unwrap().extend(msgs.iter().cloned());
        }
        c.lock().unwrap().push((numbers, counts, ok));
        b.store(false, Ordering::SeqCst);
        if ok {
            ConsumeStatus::Success
        } else {
            ConsumeStatus::Later
        }
    });
    let mut config = PushConsumerConfig::new("push_orderly");
    config.orderly = true;
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_batch_max_size = 3;
    let c = PushConsumer::start(
        i.clone(),
        config,
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    wait_until(20, "every message", || seen.lock().unwrap().len() >= 30);
    let order: Vec<u32> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| body(m).parse().unwrap())
        .collect();
    assert_eq!(order, (0..30).collect::<Vec<_>>());
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "one batch at a time");
    // The refused batch came back next, the same messages, counted once more.
    let calls = calls.lock().unwrap().clone();
    let refused = calls.iter().position(|c| !c.2).expect("a refused batch");
    let (again, counts, ok) = &calls[refused + 1];
    assert!(ok);
    assert_eq!(again, &calls[refused].0);
    assert!(counts.iter().all(|&n| n == 1), "{counts:?}");
    c.shutdown_blocking();
    i.shutdown();
}

#[test]
fn broadcasting_consumers_each_get_everything_and_keep_offsets_locally() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushBroadcast";
    produce(&p, topic, "m", 20, None);
    wait_for_route(&i, topic);
    let offsets = TempDir::new("offsets");
    let config = || {
        let mut config = PushConsumerConfig::new("push_broadcast");
        config.message_model = MessageModel::Broadcasting;
        config.consume_from = ConsumeFrom::FirstOffset;
        config.offset_dir = Some(offsets.path().to_path_buf());
        config
    };
    let subs = || vec![(topic.to_owned(), "*".to_owned())];
    let ia = named_instance(&daemon, "bc-a");
    let ib = named_instance(&daemon, "bc-b");
    let (seen_a, la) = recording();
    let (seen_b, lb) = recording();
    let a = PushConsumer::start(ia.clone(), config(), subs(), la).unwrap();
    let b = PushConsumer::start(ib.clone(), config(), subs(), lb).unwrap();
    wait_until(20, "both to get everything", || {
        distinct_bodies(&seen_a).len() == 20 && distinct_bodies(&seen_b).len() == 20
    });
    a.shutdown_blocking();
    ia.shutdown();
    let file = offsets
        .path()
        .join(ia.client_id())
        .join("push_broadcast")
        .join("offsets.json");
    assert!(file.exists(), "{} exists", file.display());

    // A restarted consumer with the same client id resumes from its file.
    produce(&p, topic, "after", 5, None);
    let ia = named_instance(&daemon, "bc-a");
    let (seen_a2, la2) = recording();
    let a2 = PushConsumer::start(ia.clone(), config(), subs(), la2).unwrap();
    wait_until(20, "the new messages", || {
        distinct_bodies(&seen_a2).len() >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = distinct_bodies(&seen_a2);
    assert_eq!(
        got,
        (0..5)
            .map(|n| format!("after-{n}"))
            .collect::<BTreeSet<_>>()
    );
    wait_until(20, "b to get the new ones", || {
        distinct_bodies(&seen_b).len() == 25
    });
    a2.shutdown_blocking();
    b.shutdown_blocking();
    for x in [i, ia, ib] {
        x.shutdown();
    }
}

#[test]
fn no_listener_call_after_shutdown_returns() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushShutdown";
    produce(&p, topic, "m", 100, None);
    wait_for_route(&i, topic);
    let calls = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicUsize::new(0));
    let (c_, d_, l_) = (calls.clone(), done.clone(), late.clone());
    let listener: mq::Listener = Arc::new(move |_msgs: &[MessageExt]| {
        if d_.load(Ordering::SeqCst) {
            l_.fetch_add(1, Ordering::SeqCst);
        }
        c_.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        if d_.load(Ordering::SeqCst) {
            l_.fetch_add(1, Ordering::SeqCst);
        }
        ConsumeStatus::Success
    });
    let mut config = PushConsumerConfig::new("push_shutdown");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_threads = 4;
    let c = PushConsumer::start(
        i.clone(),
        config,
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    wait_until(20, "some messages", || calls.load(Ordering::SeqCst) >= 10);
    c.shutdown_blocking();
    done.store(true, Ordering::SeqCst);
    let at_shutdown = calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "a listener ran after shutdown"
    );
    assert_eq!(calls.load(Ordering::SeqCst), at_shutdown);
    assert!(at_shutdown < 100, "shutdown stopped consumption early");
    i.shutdown();
}

#[test]
fn a_listener_shuts_its_own_consumer_down_without_waiting_for_itself() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushSelfShutdown";
    produce(&p, topic, "m", 20, None);
    wait_for_route(&i, topic);
    let slot: Arc<Mutex<Option<Arc<PushConsumer>>>> = Arc::new(Mutex::new(None));
    let took: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let (slot_, took_) = (slot.clone(), took.clone());
    let listener: mq::Listener = Arc::new(move |_msgs: &[MessageExt]| {
        // The first call to find the consumer shuts it down from inside
        // (the lock let go first: other calls must not wait on it).
        let consumer = slot_.lock().unwrap().take();
        if let Some(c) = consumer {
            let started = Instant::now();
            c.shutdown_blocking();
            *took_.lock().unwrap() = Some(started.elapsed());
        }
        ConsumeStatus::Success
    });
    let mut config = PushConsumerConfig::new("push_self_shutdown");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_threads = 4;
    let c = Arc::new(
        PushConsumer::start(
            i.clone(),
            config,
            vec![(topic.into(), "*".into())],
            listener,
        )
        .unwrap(),
    );
    *slot.lock().unwrap() = Some(c.clone());
    wait_until(40, "the listener's shutdown to return", || {
        took.lock().unwrap().is_some()
    });
    let took = took.lock().unwrap().unwrap();
    // It used to wait its full 30 s for the permit its own caller held.
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    i.shutdown();
}

#[test]
fn push_consumers_share_queues_and_one_takes_over() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushShare";
    produce(&p, topic, "m", 1, None);
    wait_for_route(&i, topic);
    let config = || {
        let mut config = PushConsumerConfig::new("push_share");
        config.consume_from = ConsumeFrom::FirstOffset;
        config
    };
    let main_queues = |c: &PushConsumer| -> BTreeSet<MessageQueue> {
        c.assignment()
            .into_iter()
            .filter(|q| q.topic == topic)
            .collect()
    };
    let (ia, ib) = (instance(&daemon), instance(&daemon));
    let (seen_a, la) = recording();
    let (seen_b, lb) = recording();
    let a =
        PushConsumer::start(ia.clone(), config(), vec![(topic.into(), "*".into())], la).unwrap();
    let b =
        PushConsumer::start(ib.clone(), config(), vec![(topic.into(), "*".into())], lb).unwrap();
    wait_until(15, "the queues to be shared", || {
        let (qa, qb) = (main_queues(&a), main_queues(&b));
        qa.len() == 2 && qb.len() == 2 && qa.is_disjoint(&qb)
    });
    produce(&p, topic, "shared", 20, None);
    wait_until(20, "the shared messages", || {
        let mut all = distinct_bodies(&seen_a);
        all.extend(distinct_bodies(&seen_b));
        all.len() == 21
    });
    assert!(!seen_a.lock().unwrap().is_empty() && !seen_b.lock().unwrap().is_empty());

    b.shutdown_blocking();
    let left = Instant::now();
    wait_until(10, "a to take every queue", || main_queues(&a).len() == 4);
    assert!(
        left.elapsed() < Duration::from_secs(8),
        "take-over took {:?}; the notification should beat the 20 s rebalance",
        left.elapsed()
    );
    produce(&p, topic, "after", 20, None);
    wait_until(20, "a to get everything sent after", || {
        distinct_bodies(&seen_a)
            .iter()
            .filter(|b| b.starts_with("after"))
            .count()
            == 20
    });
    a.shutdown_blocking();
    for x in [i, ia, ib] {
        x.shutdown();
    }
}

#[test]
fn a_broker_reset_moves_an_online_push_consumer_back() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "PushReset";
    produce(&p, topic, "m", 20, None);
    wait_for_route(&i, topic);
    let (seen, listener) = recording();
    let mut config = PushConsumerConfig::new("push_reset");
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PushConsumer::start(
        i.clone(),
        config,
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    wait_until(20, "every message", || seen.lock().unwrap().len() == 20);
    // What `mqadmin resetOffsetByTime` sends: the broker computes the offsets
    // and pushes RESET_CONSUMER_CLIENT_OFFSET to the online consumers.
    let addr = i.master_addr("broker-a").unwrap();
    let mut cmd = mq_protocol::frame::RemotingCommand::request(
        mq_protocol::codes::request::INVOKE_BROKER_TO_RESET_OFFSET,
    );
    cmd.put("topic", topic)
        .put("group", "push_reset")
        .put("timestamp", 0)
        .put("isForce", true);
    let resp = async_io::block_on(i.invoke(&addr, cmd, Duration::from_secs(3))).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    wait_until(20, "every message again", || {
        seen.lock().unwrap().len() == 40
    });
    c.shutdown_blocking();
    i.shutdown();
}

#[test]
fn a_broker_reset_moves_an_online_lite_consumer_back() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let p = producer(&i);
    let topic = "LiteReset";
    produce(&p, topic, "m", 20, None);
    wait_for_route(&i, topic);
    let mut config = PullConsumerConfig::new("lite_reset");
    config.consume_from = ConsumeFrom::FirstOffset;
    let c = PullConsumer::start(i.clone(), config).unwrap();
    async_io::block_on(c.subscribe(topic, "*")).unwrap();
    assert_eq!(poll_bodies(&c, 20, 20).len(), 20);
    // The heartbeat tells the broker who is online; then it pushes the reset.
    async_io::block_on(i.send_heartbeat_to_all_brokers());
    let addr = i.master_addr("broker-a").unwrap();
    let mut cmd = mq_protocol::frame::RemotingCommand::request(
        mq_protocol::codes::request::INVOKE_BROKER_TO_RESET_OFFSET,
    );
    cmd.put("topic", topic)
        .put("group", "lite_reset")
        .put("timestamp", 0)
        .put("isForce", true);
    let resp = async_io::block_on(i.invoke(&addr, cmd, Duration::from_secs(3))).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(
        poll_bodies(&c, 20, 20).len(),
        20,
        "everything again after the reset"
    );
    async_io::block_on(c.shutdown());
    i.shutdown();
}

// ---------------------------------------------------------------------------
// A push consumer group over a backlog of several CommitLog segments, with
// members joining, leaving and crashing while the backlog lasts.

/// Queues of the backlog topic.
const BACKLOG_QUEUES: usize = 8;

/// A daemon whose 1 MiB CommitLog segments and 600-entry ConsumeQueue files
/// make a backlog of tens of thousands of small messages span many of both.
fn backlog_daemon() -> Standalone {
    Standalone::start_with(&[
        "--mappedFileSizeCommitLog",
        "1048576",
        "--mappedFileSizeConsumeQueue",
        "12000",
    ])
}

/// Sends `n` messages of 200 bytes to `topic` (created with eight queues) in
/// batches, and checks that they fill several CommitLog segments.
fn produce_backlog(daemon: &Standalone, i: &Arc<ClientInstance>, topic: &str, n: usize) {
    let mut config = ProducerConfig::new("it_backlog_producer");
    config.default_topic_queue_nums = i32::try_from(BACKLOG_QUEUES).unwrap();
    let p = Producer::start(i.clone(), config).unwrap();
    let mut next = 0;
    while next < n {
        let end = (next + 50).min(n);
        let batch: Vec<Message> = (next..end)
            .map(|k| Message::new(topic, format!("{k:0>200}")))
            .collect();
        async_io::block_on(p.send_batch(&batch)).unwrap();
        next = end;
    }
    async_io::block_on(p.shutdown());
    wait_for_route(i, topic);
    let segments = std::fs::read_dir(daemon.data_dir().join("store/commitlog"))
        .unwrap()
        .count();
    assert!(
        segments >= 4,
        "the backlog fills only {segments} segment(s)"
    );
}

/// What the group's listeners received, and how far the test lets them go.
#[derive(Default)]
struct Progress {
    /// Deliveries of each (queue id, queue offset).
    deliveries: BTreeMap<(i32, i64), usize>,
    /// Listener calls wait while this many distinct messages have arrived.
    allowed: usize,
}

/// Paces a group: listener calls block once the allowance is used up, so the
/// test changes the group's membership while a known backlog is left and
/// while nobody consumes (what a member consumed is then fixed while its
/// queues move).
#[derive(Default)]
struct Pace {
    progress: Mutex<Progress>,
    changed: std::sync::Condvar,
}

impl Pace {
    fn distinct(&self) -> usize {
        self.progress.lock().unwrap().deliveries.len()
    }

    fn allow(&self, allowed: usize) {
        self.progress.lock().unwrap().allowed = allowed;
        self.changed.notify_all();
    }

    /// A member's listener; once `leaving` is set its calls no longer wait
    /// (so that the member can stop).
    fn listener(self: &Arc<Self>, leaving: Arc<AtomicBool>) -> mq::Listener {
        let pace = self.clone();
        Arc::new(move |msgs: &[MessageExt]| {
            let mut p = pace.progress.lock().unwrap();
            while p.deliveries.len() >= p.allowed && !leaving.load(Ordering::SeqCst) {
                p = pace.changed.wait(p).unwrap();
            }
            for m in msgs {
                *p.deliveries
                    .entry((m.queue_id, m.queue_offset))
                    .or_default() += 1;
            }
            ConsumeStatus::Success
        })
    }
}

/// A membership change, applied once the group consumed its share of the backlog.
enum Step {
    /// A new member starts.
    Join(&'static str),
    /// A member shuts down cleanly (commits, unregisters).
    Leave(&'static str),
    /// A member vanishes: its connections close without a commit or an
    /// unregistration, as when its process dies.
    Crash(&'static str),
}

struct Member {
    name: &'static str,
    instance: Arc<ClientInstance>,
    consumer: PushConsumer,
    leaving: Arc<AtomicBool>,
}

/// Member settings that keep flow control busy (few messages cached per
/// queue) and the bound on duplicates tight.
fn paced_config(group: &str) -> PushConsumerConfig {
    let mut config = PushConsumerConfig::new(group);
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_threads = 8;
    config.pull_threshold_for_queue = 100;
    config
}

/// Runs `steps` over a backlog of `n` messages, one step after each equal
/// share of it (the first step before any), and checks that every message was
/// consumed, that no queue was left behind, and that the duplicates stay
/// within what the moved queues' committed offsets explain.
fn group_consumes_backlog(name: &str, n: usize, steps: &[Step]) {
    let daemon = backlog_daemon();
    let i = instance(&daemon);
    let topic = format!("{name}Backlog");
    let group = format!("{name}_group");
    produce_backlog(&daemon, &i, &topic, n);
    let config = paced_config(&group);
    // Each pull commits the queue's oldest message not yet consumed, and a
    // member pulls again once it caches no more than the threshold: what it
    // consumed past its last commit is at most what it cached then plus that
    // pull, listener calls in flight included. The new owner of a queue starts
    // no lower than that commit, so no more than this many of its messages
    // arrive twice per move.
    let per_move = config.pull_threshold_for_queue
        + usize::try_from(config.pull_batch_size).unwrap()
        + config.consume_threads * config.consume_batch_max_size;

    let pace = Arc::new(Pace::default());
    let mut members: Vec<Member> = Vec::new();
    let mut owners: BTreeMap<i32, &'static str> = BTreeMap::new();
    // Times each queue changed hands.
    let mut moves: BTreeMap<i32, usize> = BTreeMap::new();
    let started = Instant::now();
    for (k, step) in steps.iter().enumerate() {
        let allowed = n * k / steps.len();
        wait_until(60, "the group to consume its share", || {
            pace.distinct() >= allowed
        });
        match *step {
            Step::Join(who) => {
                let instance = named_instance(&daemon, &format!("{name}-{who}"));
                let leaving = Arc::new(AtomicBool::new(false));
                let consumer = PushConsumer::start(
                    instance.clone(),
                    config.clone(),
                    vec![(topic.clone(), "*".into())],
                    pace.listener(leaving.clone()),
                )
                .unwrap();
                members.push(Member {
                    name: who,
                    instance,
                    consumer,
                    leaving,
                });
            }
            Step::Leave(who) | Step::Crash(who) => {
                let at = members.iter().position(|m| m.name == who).unwrap();
                let m = members.remove(at);
                m.leaving.store(true, Ordering::SeqCst);
                pace.changed.notify_all();
                if matches!(step, Step::Leave(_)) {
                    m.consumer.shutdown_blocking();
                    m.instance.shutdown();
                } else {
                    m.instance.shutdown();
                    drop(m.consumer);
                }
            }
        }
        // Settled: every queue read by exactly one member, as many each as
        // AllocateMessageQueueAveragely gives.
        let mut now: BTreeMap<i32, &'static str> = BTreeMap::new();
        wait_until(20, "the group to settle", || {
            now.clear();
            let mut sizes = Vec::new();
            for m in &members {
                let mine: Vec<i32> = m
                    .consumer
                    .assignment()
                    .iter()
                    .filter(|q| q.topic == topic)
                    .map(|q| q.queue_id)
                    .collect();
                sizes.push(mine.len());
                for q in mine {
                    now.insert(q, m.name);
                }
            }
            let fair = BACKLOG_QUEUES / members.len();
            now.len() == BACKLOG_QUEUES
                && sizes.iter().sum::<usize>() == BACKLOG_QUEUES
                && sizes.iter().all(|s| *s == fair || *s == fair + 1)
        });
        for (q, who) in &now {
            if owners.get(q).is_some_and(|was| was != who) {
                *moves.entry(*q).or_default() += 1;
            }
        }
        owners = now;
        pace.allow(n * (k + 1) / steps.len());
    }
    pace.allow(usize::MAX);
    wait_until(60, "every message", || pace.distinct() >= n);
    let elapsed = started.elapsed();
    for m in members {
        m.consumer.shutdown_blocking();
        m.instance.shutdown();
    }

    let progress = pace.progress.lock().unwrap();
    assert_eq!(progress.deliveries.len(), n);
    let mut report = Vec::new();
    for q in 0..i32::try_from(BACKLOG_QUEUES).unwrap() {
        let mq = MessageQueue::new(topic.as_str(), "broker-a", q);
        let end = async_io::block_on(mq::consumer::max_offset(&i, &mq)).unwrap();
        let queue: Vec<usize> = progress
            .deliveries
            .range((q, 0)..(q, i64::MAX))
            .map(|(_, d)| *d)
            .collect();
        assert_eq!(
            i64::try_from(queue.len()).unwrap(),
            end,
            "queue {q} was left behind"
        );
        let duplicates: usize = queue.iter().map(|d| d - 1).sum();
        let moved = moves.get(&q).copied().unwrap_or(0);
        report.push(format!("q{q}: {duplicates} in {moved} move(s)"));
        assert!(
            duplicates <= moved * per_move,
            "queue {q}: {duplicates} duplicates in {moved} move(s) of at most {per_move}"
        );
    }
    eprintln!(
        "{name}: {n} messages in {elapsed:?}; duplicates (at most {per_move} a move): {}",
        report.join(", ")
    );
    i.shutdown();
}

#[test]
fn one_push_consumer_reads_a_multi_segment_backlog_exactly_once() {
    group_consumes_backlog("One", 20_000, &[Step::Join("a")]);
}

#[test]
fn two_push_consumers_share_a_backlog_as_members_come_and_go() {
    group_consumes_backlog(
        "Two",
        24_000,
        &[
            Step::Join("a"),
            Step::Join("b"),
            Step::Leave("a"),
            Step::Join("c"),
        ],
    );
}

#[test]
fn four_push_consumers_share_a_backlog_as_members_come_go_and_crash() {
    group_consumes_backlog(
        "Four",
        32_000,
        &[
            Step::Join("a"),
            Step::Join("b"),
            Step::Join("c"),
            Step::Join("d"),
            Step::Leave("b"),
            Step::Crash("c"),
            Step::Join("e"),
        ],
    );
}

#[test]
fn a_slow_message_holds_its_queue_back_no_further_than_the_max_span() {
    let daemon = Standalone::start();
    let i = instance(&daemon);
    let topic = "PushSpan";
    let mut config = ProducerConfig::new("it_span_producer");
    config.default_topic_queue_nums = 1;
    let p = Producer::start(i.clone(), config).unwrap();
    let n = 1000;
    produce(&p, topic, "m", n, None);
    wait_for_route(&i, topic);

    // The listener holds the queue's first message until released.
    let released = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let highest = Arc::new(AtomicUsize::new(0));
    let (seen, record) = recording();
    let listener: mq::Listener = {
        let (released, highest) = (released.clone(), highest.clone());
        Arc::new(move |msgs: &[MessageExt]| {
            if msgs.iter().any(|m| m.queue_offset == 0) {
                let (lock, cv) = &*released;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = cv.wait(go).unwrap();
                }
            }
            for m in msgs {
                let offset = usize::try_from(m.queue_offset).unwrap();
                highest.fetch_max(offset, Ordering::SeqCst);
            }
            record(msgs)
        })
    };
    let mut config = PushConsumerConfig::new("push_span");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.consume_concurrently_max_span = 100;
    let c = PushConsumer::start(
        i.clone(),
        config.clone(),
        vec![(topic.into(), "*".into())],
        listener,
    )
    .unwrap();
    // With offset 0 in process, a pull is made only while the cached
    // messages span at most 100 offsets: nothing past 100 + one pull arrives.
    let limit =
        config.consume_concurrently_max_span + usize::try_from(config.pull_batch_size).unwrap();
    wait_until(20, "the messages after the slow one", || {
        highest.load(Ordering::SeqCst) >= config.consume_concurrently_max_span
    });
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        let h = highest.load(Ordering::SeqCst);
        assert!(
            h <= limit,
            "offset {h} arrived while offset 0 was in process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    *released.0.lock().unwrap() = true;
    released.1.notify_all();
    wait_until(20, "every message", || distinct_bodies(&seen).len() == n);
    c.shutdown_blocking();
    assert_eq!(seen.lock().unwrap().len(), n, "each once");
    i.shutdown();
}
