"""Producers and both consumer styles end to end against a real mqd."""

from __future__ import annotations

import threading
import time
from typing import Any, List, Tuple

import pytest

import mq

WAIT = 30.0  # seconds a message may take to arrive (rebalance, retry topic)


def drain(consumer: mq.PullConsumer, count: int, timeout: float = WAIT) -> List[mq.Message]:
    got: List[mq.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.poll(0.5)
    return got


def test_push_handler_that_raises_gets_the_message_again(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        sent = producer.send(
            topic, b"retry me", tags="TagA", keys=["order-1", "user-7"], properties={"color": "blue"}
        )
    assert sent.status is mq.SendStatus.OK and sent.msg_id

    deliveries: List[Tuple[mq.Message, str]] = []
    done = threading.Event()

    with mq.PushConsumer(namesrv_addr=namesrv, group=group, consume_from="first") as consumer:
        consumer.subscribe(topic, "TagA || TagB")

        @consumer.handler
        def handle(msg: mq.Message) -> None:
            deliveries.append((msg, threading.current_thread().name))
            if len(deliveries) == 1:
                raise RuntimeError("not yet: retry later")
            done.set()

        consumer.start(threads=2)
        assert done.wait(WAIT), f"deliveries: {deliveries}"

    first, second = deliveries[0][0], deliveries[1][0]
    assert first.msg_id == second.msg_id == sent.msg_id
    assert (first.reconsume_times, second.reconsume_times) == (0, 1)
    for msg in (first, second):
        assert msg.topic == topic
        assert msg.body == b"retry me"
        assert msg.tags == "TagA"
        assert msg.keys == "order-1 user-7"
        assert msg.properties["color"] == "blue"
        assert msg.born_timestamp > 0 and msg.store_timestamp >= msg.born_timestamp
        assert msg.born_host and msg.store_host and msg.broker_name
    # Handlers run on the binding's own threads.
    assert all(name.startswith("mq-consumer-") for _, name in deliveries)
    assert consumer.closed


def test_pull_iterator_seek_and_commit(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        results = [
            producer.send_ordered(topic, f"m{i}".encode(), sharding_key="one-queue") for i in range(10)
        ]
    queue = results[0].queue
    assert all(r.queue == queue for r in results)
    offsets = [r.queue_offset for r in results]
    assert offsets == list(range(offsets[0], offsets[0] + 10))

    with mq.PullConsumer(
        namesrv_addr=namesrv, group=group, consume_from="first", auto_commit=False
    ) as consumer:
        consumer.assign([queue])
        assert consumer.assignment() == [queue]
        got: List[mq.Message] = []
        for msg in consumer:
            got.append(msg)
            if len(got) == 10:
                break
        assert [m.body for m in got] == [f"m{i}".encode() for i in range(10)]
        assert [m.queue_offset for m in got] == offsets
        assert all(m.queue == queue for m in got)

        # Back to the sixth message: the last five come again.
        consumer.seek(queue, offsets[5])
        again = drain(consumer, 5)
        assert [m.body for m in again] == [f"m{i}".encode() for i in range(5, 10)]

        # Nothing committed yet: none, or 0 (RocketMQ's broker answers 0 for
        # a group without an offset while the queue still starts at 0).
        assert consumer.committed(queue) in (None, 0)
        consumer.commit()
        assert consumer.committed(queue) == offsets[-1] + 1

        # seek_to_timestamp(0): the queue's first message.
        consumer.seek_to_timestamp(queue, 0)
        first = drain(consumer, 1)
        assert first[0].queue_offset == offsets[0]

    # A new consumer of the group starts where the commit left it: nothing.
    with mq.PullConsumer(namesrv_addr=namesrv, group=group, auto_commit=False) as consumer:
        consumer.assign([queue])
        assert consumer.poll(1.0) == []


def test_fetch_queues_then_assign_them_all(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        sent = [producer.send(mq.Message(topic, f"f{i}".encode(), flag=100 + i)) for i in range(8)]
    assert all(r.transaction_id is None and r.topic == topic for r in sent)
    with mq.PullConsumer(namesrv_addr=namesrv, group=group, consume_from="first") as consumer:
        deadline = time.monotonic() + WAIT
        while True:  # a topic created by a send is registered moments later
            try:
                queues = consumer.fetch_queues(topic)
                break
            except mq.MqNoRouteError:
                assert time.monotonic() < deadline, "no route for the topic"
                time.sleep(0.05)
        assert queues and all(q.topic == topic and q.broker_name for q in queues)
        assert {r.queue for r in sent} <= set(queues)
        consumer.assign(queues)
        got = drain(consumer, 8)
        with pytest.raises(mq.MqNoRouteError):
            consumer.fetch_queues(topic + "_none")
    assert sorted((m.body, m.flag) for m in got) == [(f"f{i}".encode(), 100 + i) for i in range(8)]


def test_a_body_with_nul_bytes_arrives_whole(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    body = b"\x00head\x00\xff\xd8\xff\xdb" + bytes(range(256)) + b"\x00"
    large = (b"\x00" * 1000 + b"x") * 100  # over the scratch message's 64 KiB
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        sent = [
            producer.send(mq.Message(topic, body)),  # a built message
            producer.send(topic, body),  # the thread's scratch message
            producer.send(topic, large),
            producer.send(topic, b"\x00"),
        ]
    with mq.PullConsumer(namesrv_addr=namesrv, group=group, consume_from="first") as consumer:
        consumer.subscribe(topic)
        got = {m.msg_id: m.body for m in drain(consumer, 4)}
    assert got == {
        sent[0].msg_id: body,
        sent[1].msg_id: body,
        sent[2].msg_id: large,
        sent[3].msg_id: b"\x00",
    }


def test_async_batch_and_oneway_sends(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    callbacks: List[Tuple[object, object, str]] = []
    called = threading.Event()

    def on_done(result: object, error: object) -> None:
        callbacks.append((result, error, threading.current_thread().name))
        if len(callbacks) == 20:
            called.set()

    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        futures = [producer.send_async(topic, f"a{i}", callback=on_done) for i in range(20)]
        results = [f.result(WAIT) for f in futures]
        producer.flush(WAIT)
        batch = producer.send_batch([mq.Message(topic, b"b1"), mq.Message(topic, b"b2")])
        producer.send_oneway(topic, b"oneway")
    assert all(r.status is mq.SendStatus.OK for r in results)
    assert len(set(r.msg_id for r in results)) == 20
    assert called.wait(WAIT)
    assert all(err is None and name == "mq-producer-reports" for _, err, name in callbacks)
    assert len(batch.msg_id.split(",")) == 2

    with mq.PullConsumer(namesrv_addr=namesrv, group=group, consume_from="first") as consumer:
        consumer.subscribe(topic)
        got = drain(consumer, 23)
    bodies = sorted(m.body for m in got)
    assert bodies == sorted([f"a{i}".encode() for i in range(20)] + [b"b1", b"b2", b"oneway"])


def test_transaction_committed_by_the_check_back(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    checked: List[Tuple[mq.Message, str]] = []

    # The broker checks back with a producer of the group it knows from a
    # heartbeat: libmq sends one as soon as a send learns the broker.
    with mq.TransactionProducer(namesrv_addr=namesrv, group=group + "_p") as producer:

        @producer.check_handler
        def check(msg: mq.Message) -> mq.TxnState:
            checked.append((msg, threading.current_thread().name))
            return mq.TxnState.COMMIT if msg.body == b"decided later" else mq.TxnState.ROLLBACK

        seen_local: List[mq.SendResult] = []

        def local(msg: mq.Message, result: mq.SendResult) -> None:
            seen_local.append(result)
            return None  # unknown: the broker checks back

        result, state = producer.send_in_transaction(mq.Message(topic, b"decided later"), local)
        assert state is mq.TxnState.UNKNOWN and result.transaction_id
        assert seen_local == [result]
        # A rolled-back one never arrives.
        _, state = producer.send_in_transaction(mq.Message(topic, b"rolled back"), lambda m, r: False)
        assert state is mq.TxnState.ROLLBACK

        with mq.PullConsumer(namesrv_addr=namesrv, group=group, consume_from="first") as consumer:
            consumer.subscribe(topic)
            got = drain(consumer, 1)
            assert [m.body for m in got] == [b"decided later"]
            assert consumer.poll(1.0) == []
    assert checked and checked[0][0].body == b"decided later"
    assert checked[0][1] == "mq-txn-checks"
    assert checked[0][0].msg_id == result.msg_id


def test_send_errors_carry_status_and_detail(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group) as producer:
        with pytest.raises(mq.MqInvalidArgError) as info:
            producer.send(topic, b"")  # an empty body is refused
        assert info.value.name == "MQ_ERR_INVALID_ARG" and info.value.message
        with pytest.raises(mq.MqInvalidArgError):
            producer.send(topic, b"x", delay_level=99)


def test_orderly_consumer_keeps_the_order_across_a_retry(namesrv: str, names: Tuple[str, str]) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        for i in range(3):
            producer.send_ordered(topic, f"step {i}".encode(), sharding_key="order-42")
    seen: List[Tuple[bytes, int]] = []
    done = threading.Event()

    consumer = mq.PushConsumer(namesrv_addr=namesrv, group=group, consume_from="first", orderly=True)
    with consumer:
        consumer.subscribe(topic)

        @consumer.handler
        def handle(msg: mq.Message) -> None:
            seen.append((msg.body, msg.reconsume_times))
            if len(seen) == 1:
                raise RuntimeError("the first step fails once")
            if msg.body == b"step 2":
                done.set()

        consumer.start(threads=4)
        assert done.wait(WAIT), seen
    assert [body for body, _ in seen] == [b"step 0", b"step 0", b"step 1", b"step 2"]


def test_broadcasting_consumers_each_get_every_message(namesrv: str, names: Tuple[str, str], tmp_path: Any) -> None:
    topic, group = names
    with mq.Producer(namesrv_addr=namesrv, group=group + "_p") as producer:
        producer.send(topic, b"to everyone")  # creates the topic
    got: List[List[bytes]] = [[], []]
    events = [threading.Event(), threading.Event()]
    consumers = []
    for i in range(2):
        c = mq.PushConsumer(
            namesrv_addr=namesrv,
            group=group,
            message_model="broadcasting",
            consume_from="first",
            instance_name=f"bc{i}",
            offset_dir=str(tmp_path / f"offsets{i}"),
        )
        c.subscribe(topic)

        def handle(msg: mq.Message, i: int = i) -> None:
            got[i].append(msg.body)
            events[i].set()

        c.start(handle, threads=1)
        consumers.append(c)
    try:
        assert all(e.wait(WAIT) for e in events), got
    finally:
        for c in consumers:
            c.close()
    assert got == [[b"to everyone"], [b"to everyone"]]
