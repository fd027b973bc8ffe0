"""Close, garbage collection, fork and Ctrl-C."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
import warnings
from typing import Any, List, Tuple

import pytest

import mq


def test_close_is_idempotent_and_calls_after_close_raise(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    producer = mq.Producer(namesrv_addr=namesrv, group=group + "_p")
    producer.send(topic, b"x")
    assert not producer.closed
    producer.close()
    producer.close()
    assert producer.closed
    with pytest.raises(mq.MqClosedError) as info:
        producer.send(topic, b"y")
    assert info.value.name == "MQ_ERR_CLOSED"
    with pytest.raises(mq.MqClosedError):
        producer.send_async(topic, b"y")
    with pytest.raises(mq.MqClosedError):
        producer.flush(1)

    with mq.PullConsumer(namesrv_addr=namesrv, group=group) as pull:
        pull.subscribe(topic)
    pull.close()
    with pytest.raises(mq.MqClosedError):
        pull.poll(0.1)
    with pytest.raises(mq.MqClosedError):
        pull.commit()
    assert list(pull) == []  # the iterator of a closed consumer ends

    push = mq.PushConsumer(namesrv_addr=namesrv, group=group + "_push")
    push.subscribe(topic)
    push.start(lambda m: None, threads=2)
    push.close()
    push.close()
    with pytest.raises(mq.MqClosedError):
        push.subscribe(topic)

    with mq.TransactionProducer(namesrv_addr=namesrv, group=group + "_t") as txn:
        pass
    txn.close()
    with pytest.raises(mq.MqClosedError):
        txn.send_half(topic, b"z")


def test_close_wakes_a_thread_blocked_in_poll(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    consumer = mq.PullConsumer(namesrv_addr=namesrv, group=group)
    consumer.subscribe(topic)
    got: List[Any] = []

    def iterate() -> None:
        got.extend(consumer)  # blocks until close
        got.append("ended")

    t = threading.Thread(target=iterate)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    consumer.close()
    t.join(10)
    assert not t.is_alive() and got == ["ended"]
    assert time.monotonic() - started < 10


def test_close_from_inside_a_handler(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        producer.send(topic, b"stop")
    consumer = mq.PushConsumer(namesrv_addr=namesrv, group=group, consume_from="first")
    consumer.subscribe(topic)
    handled = threading.Event()

    @consumer.handler
    def handle(msg: mq.Message) -> None:
        consumer.close()  # returns at once; the close ends after this handler
        handled.set()

    started = time.monotonic()
    consumer.run(threads=2)  # returns once closed
    assert handled.is_set() and consumer.closed
    assert time.monotonic() - started < 30


def test_clients_collected_without_close_do_not_crash(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with pytest.warns(ResourceWarning, match="unclosed mq"):
        pull = mq.PullConsumer(namesrv_addr=namesrv, group=group)
        pull.subscribe(topic)
        pull.poll(0.1)
        push = mq.PushConsumer(namesrv_addr=namesrv, group=group + "_push")
        push.subscribe(topic)
        producer = mq.Producer(namesrv_addr=namesrv, group=group + "_p")
        producer.send(topic, b"x")
        txn = mq.TransactionProducer(namesrv_addr=namesrv, group=group + "_t")
        del pull, push, producer, txn
        gc.collect()
    # libmq is still fine afterwards.
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p2") as producer:
        assert producer.send(topic, b"after").status is mq.SendStatus.OK


def _in_child(producer: mq.Producer, namesrv: str, topic: str, results: Any) -> None:
    outcome = []
    try:
        producer.send(topic, b"from the child")
        outcome.append("send: no error")
    except mq.MqForkedError as e:
        outcome.append(f"send: {e.name}")
    try:
        mq.Producer(namesrv_addr=namesrv, group="child")
        outcome.append("new: no error")
    except mq.MqForkedError as e:
        outcome.append(f"new: {e.name}")
    producer.close()  # a no-op in the child: nothing to hang on
    outcome.append(f"closed: {producer.closed}")
    results.put(outcome)


def test_a_forked_child_gets_mq_forked_error(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    ctx = multiprocessing.get_context("fork")
    with mq.Producer(namesrv_addr=namesrv, group=group) as producer:
        producer.send(topic, b"from the parent")
        results = ctx.SimpleQueue()
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads is unsafe.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = ctx.Process(target=_in_child, args=(producer, namesrv, topic, results))
            child.start()
        child.join(30)
        assert child.exitcode == 0
        outcome = results.get()
        results.close()
        # The parent's producer still works.
        assert producer.send(topic, b"parent again").status is mq.SendStatus.OK
    assert outcome == ["send: MQ_ERR_FORKED", "new: MQ_ERR_FORKED", "closed: True"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_sigint_interrupts_a_long_poll_within_a_second(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.PullConsumer(namesrv_addr=namesrv, group=group) as consumer:
        consumer.subscribe(topic)
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            consumer.poll(10.0)
        elapsed = time.monotonic() - started
        timer.join()
        assert elapsed < 1.5, f"interrupted after {elapsed:.2f} s (signal at 0.5 s)"
        # Still usable afterwards.
        assert consumer.poll(0.1) == []


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_sigint_stops_a_running_push_consumer(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    consumer = mq.PushConsumer(namesrv_addr=namesrv, group=group)
    consumer.subscribe(topic)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        consumer.run(lambda m: None, threads=2)
    timer.join()
    assert consumer.closed
    assert time.monotonic() - started < 5


EXIT_SCRIPT = r"""
import atexit, sys
clients = []

def after_mq_exit_hook():
    # Registered before mq's own hook, so it runs after it (LIFO).
    print("closed:", [c.closed for c in clients], flush=True)

atexit.register(after_mq_exit_hook)
import mq
namesrv, topic, group = sys.argv[1:4]
p = mq.Producer(namesrv_addr=namesrv, group=group + "_p")
p.send(topic, b"x")
f = p.send_async(topic, b"in flight at exit")
c = mq.PushConsumer(namesrv_addr=namesrv, group=group, consume_from="first")
c.subscribe(topic)
c.start(lambda m: None, threads=2)
pull = mq.PullConsumer(namesrv_addr=namesrv, group=group + "_pull")
pull.subscribe(topic)
clients[:] = [p, c, pull]
print("started", flush=True)
"""


def test_open_clients_are_closed_at_exit(namesrv: str, names: Tuple[str, str]) -> None:
    import subprocess
    import sys

    topic, group = names
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", EXIT_SCRIPT, namesrv, topic, group],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "started" in proc.stdout and "closed: [True, True, True]" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr and "Fatal" not in proc.stderr, proc.stderr
    assert time.monotonic() - started < 30
