//! The library's threads belong to its client instances: an instance with a
//! producer and consumers runs `mq-client-*` threads, and none is left once
//! it is shut down or its last handle is dropped, wherever that happens (a
//! callback on one of those threads included). A lone connection's thread
//! (`mq-conn-*`) ends with the connection. No broker is needed: a NameServer
//! that accepts connections and never answers (or a refused port) keeps the
//! instance's loops and connections busy.

use std::net::TcpListener;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mq::connection::RemotingClient;
use mq::{
    ClientConfig, ClientInstance, ConsumeStatus, ErrorKind, Message, MessageExt, Producer,
    ProducerConfig, PullConsumer, PullConsumerConfig, PushConsumer, PushConsumerConfig,
};

/// The tests count every thread of the process: one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Names of this process's threads that start with `prefix`.
fn threads(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Waits up to 5 s for `n` threads named `prefix*`. A new thread names
/// itself once it runs, so one just started may still wear its parent's name.
fn wait_for(prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads(prefix).len() != n {
        assert!(
            Instant::now() < deadline,
            "waiting for {n} threads {prefix}*, have {:?}",
            threads(prefix)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 5 s for every thread named `prefix*` to exit.
fn wait_until_gone(prefix: &str) {
    wait_for(prefix, 0);
}

/// A NameServer that accepts connections and never answers; its connections
/// live as long as the listener's thread holds them (the test process).
fn silent_namesrv() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = listener.local_addr().expect("local address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// Waits for the name of the thread a callback ran on, and checks it was
/// one of the client's.
fn ran_on_a_client_thread(finished: &mpsc::Receiver<Option<String>>) {
    let on = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the callback returned");
    assert!(
        on.as_deref().is_some_and(|n| n.starts_with("mq-client-")),
        "{on:?}"
    );
}

/// The name of the calling thread.
fn this_thread() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

fn config(namesrv: &str, name: &str) -> ClientConfig {
    let mut config = ClientConfig::new(namesrv);
    config.instance_name = name.into();
    config.request_timeout = Duration::from_millis(300);
    config.executor_threads = 3;
    config
}

/// A producer, a concurrent and an orderly push consumer and a subscribed
/// pull consumer on `instance`, and one send in the background.
struct Members {
    producer: Producer,
    push: PushConsumer,
    orderly: PushConsumer,
    pull: PullConsumer,
}

fn start_members(instance: &Arc<ClientInstance>, sent: mpsc::Sender<ErrorKind>) -> Members {
    let producer =
        Producer::start(instance.clone(), ProducerConfig::new("threads_p")).expect("a producer");
    producer.send_async(Message::new("T", "x"), move |outcome| {
        let _ = sent.send(outcome.expect_err("nothing answers").kind());
    });
    let listener = Arc::new(|_: &[MessageExt]| ConsumeStatus::Success);
    let push = PushConsumer::start(
        instance.clone(),
        PushConsumerConfig::new("threads_c"),
        vec![("T".into(), "*".into())],
        listener.clone(),
    )
    .expect("a push consumer");
    let mut orderly_config = PushConsumerConfig::new("threads_o");
    orderly_config.orderly = true;
    let orderly = PushConsumer::start(
        instance.clone(),
        orderly_config,
        vec![("T".into(), "*".into())],
        listener,
    )
    .expect("an orderly push consumer");
    let pull = PullConsumer::start(instance.clone(), PullConsumerConfig::new("threads_l"))
        .expect("a pull consumer");
    async_io::block_on(pull.subscribe("T", "*")).expect("subscribed, routes pending");
    Members {
        producer,
        push,
        orderly,
        pull,
    }
}

#[test]
fn shutdown_stops_every_client_thread_before_it_returns() {
    let _serial = one_at_a_time();
    let namesrv = silent_namesrv();
    let instance =
        ClientInstance::start(config(&namesrv, "threads-shutdown")).expect("an instance");
    let (sent, outcome) = mpsc::channel();
    let members = start_members(&instance, sent);
    assert_eq!(
        threads("mq-client-").len(),
        3,
        "{:?}",
        threads("mq-client-")
    );

    instance.shutdown();
    assert_eq!(threads("mq-client-"), Vec::<String>::new());
    // The send in flight was reported, once, rather than forgotten.
    let kind = outcome
        .recv_timeout(Duration::from_secs(5))
        .expect("the callback ran");
    assert!(
        matches!(kind, ErrorKind::Closed | ErrorKind::NoNameServer),
        "{kind:?}"
    );
    assert!(outcome.recv_timeout(Duration::from_millis(100)).is_err());
    // What needs the brokers now fails at once; shutting down is quick.
    let err = members
        .producer
        .send_blocking(&Message::new("T", "x"))
        .expect_err("the instance is shut down");
    assert_eq!(err.kind(), ErrorKind::Closed);
    members.push.shutdown_blocking();
    members.orderly.shutdown_blocking();
    async_io::block_on(members.pull.shutdown());
    drop(members);
    assert_eq!(threads("mq-client-"), Vec::<String>::new());
}

#[test]
fn dropping_the_last_handle_stops_every_client_thread() {
    let _serial = one_at_a_time();
    let namesrv = silent_namesrv();
    let instance =
        ClientInstance::get_or_start(config(&namesrv, "threads-drop")).expect("an instance");
    let again =
        ClientInstance::get_or_start(config(&namesrv, "threads-drop")).expect("the same instance");
    assert!(Arc::ptr_eq(&instance, &again));
    let (sent, _outcome) = mpsc::channel();
    let members = start_members(&instance, sent);
    wait_for("mq-client-", 3);

    drop((instance, again));
    // The producer and consumers still hold the instance.
    assert_eq!(threads("mq-client-").len(), 3);
    drop(members);
    wait_until_gone("mq-client-");

    // The registry let the instance go: the same client id starts afresh.
    let fresh =
        ClientInstance::get_or_start(config(&namesrv, "threads-drop")).expect("a new instance");
    assert!(!fresh.is_closed());
    wait_for("mq-client-", 3);
    drop(fresh);
    assert_eq!(threads("mq-client-"), Vec::<String>::new());
}

#[test]
fn shutdown_from_a_callback_on_a_client_thread_does_not_deadlock() {
    let _serial = one_at_a_time();
    // Port 1 refuses at once, so the send fails fast and its callback runs.
    let instance =
        ClientInstance::start(config("127.0.0.1:1", "threads-callback")).expect("an instance");
    let producer =
        Producer::start(instance.clone(), ProducerConfig::new("threads_cb")).expect("a producer");
    let (done, finished) = mpsc::channel();
    let own = instance.clone();
    producer.send_async(Message::new("T", "x"), move |_| {
        own.shutdown();
        let _ = done.send(this_thread());
    });
    ran_on_a_client_thread(&finished);
    assert!(instance.is_closed());
    wait_until_gone("mq-client-");
    drop((producer, instance));
}

#[test]
fn the_last_handle_dropped_in_a_callback_stops_the_threads() {
    let _serial = one_at_a_time();
    let instance =
        ClientInstance::start(config("127.0.0.1:1", "threads-last")).expect("an instance");
    let producer =
        Producer::start(instance, ProducerConfig::new("threads_last")).expect("a producer");
    let (go, ready) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel();
    let sender = producer.clone();
    // The callback holds the last handle, and drops it on a client thread
    // once the test has dropped its own.
    sender.send_async(Message::new("T", "x"), move |_| {
        let _ = ready.recv();
        drop(producer);
        let _ = done.send(this_thread());
    });
    drop(sender);
    go.send(()).expect("the callback waits");
    ran_on_a_client_thread(&finished);
    wait_until_gone("mq-client-");
}

#[test]
fn a_lone_connection_s_thread_ends_with_the_connection() {
    let _serial = one_at_a_time();
    let namesrv = silent_namesrv();
    let conn = async_io::block_on(RemotingClient::connect(
        &namesrv,
        Duration::from_secs(1),
        None,
    ))
    .expect("connected");
    wait_for("mq-conn-", 1);
    drop(conn);
    assert_eq!(threads("mq-conn-"), Vec::<String>::new());
}

#[test]
fn a_send_that_fails_at_once_calls_back_on_a_client_thread() {
    let _serial = one_at_a_time();
    let instance =
        ClientInstance::start(config("127.0.0.1:1", "threads-at-once")).expect("an instance");
    let producer = Producer::start(instance.clone(), ProducerConfig::new("threads_at_once"))
        .expect("a producer");
    let (done, finished) = mpsc::channel();
    // An empty body is refused before anything is sent: the send ends in
    // its first poll, which runs on this thread.
    producer.send_async(Message::new("T", ""), move |outcome| {
        assert!(outcome.is_err(), "an empty body is refused");
        let _ = done.send(this_thread());
    });
    ran_on_a_client_thread(&finished);
    drop(producer);
    instance.shutdown();
}
