"""Consumers: :class:`PushConsumer` (handlers on the binding's threads) and
:class:`PullConsumer` (the application polls)."""

from __future__ import annotations

import logging
import threading
import time
from ctypes import byref, c_int64, c_void_p
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from . import _lib, _native
from .config import ConfigValue, make
from .errors import MqClosedError, MqError, last_error
from .message import (
    ConsumeStatus,
    Message,
    MessageQueue,
    batch_messages,
    queue_list,
    read_queue_list,
)
from .producer import _Client, _new

log = logging.getLogger("mq")

Handler = Callable[[Message], Any]
QueueLike = Union[MessageQueue, Sequence[Any]]

# The consumer whose handler runs on this thread (close() from a handler
# must not wait for the handler's own batch).
_in_handler = threading.local()


class PushConsumer(_Client):
    """A push consumer: libmq pulls, your handler consumes.

    ::

        consumer = mq.PushConsumer(namesrv_addr=..., group="g1", consume_from="first")
        consumer.subscribe("Topic", "TagA || TagB")

        @consumer.handler
        def handle(msg: mq.Message) -> None:
            print(msg.msg_id, msg.body)

        consumer.run(threads=4)     # blocks until close() or Ctrl-C
        # or consumer.start(); ...; consumer.close()

    The handler runs on the consumer's own threads (``mq-consumer-N``),
    which take batches with ``mq_push_consumer_poll``: returning normally
    acks the batch SUCCESS; raising (or returning ``ConsumeStatus.LATER``)
    acks it LATER, and the message comes back later with ``reconsume_times``
    one higher (orderly consumers: the same messages after a pause). A batch
    holds ``consume_batch_max_size`` messages (1 by default); the handler is
    called for each, and the first that raises makes the whole batch LATER.

    Orderly and broadcasting consumers: ``orderly=True``,
    ``message_model="broadcasting"``. Other keys: ``consume_from``
    (``last``/``first``/``timestamp:MS``), ``consume_threads``,
    ``max_reconsume_times``, ``consume_timeout_ms``, ``close_timeout_ms``...

    A started consumer runs until ``close()`` (or interpreter exit), even
    when the program keeps no reference to it.
    """

    _what = "push consumer"

    def __init__(
        self,
        config: Optional[Mapping[str, ConfigValue]] = None,
        /,
        handler: Optional[Handler] = None,
        **options: ConfigValue,
    ) -> None:
        lib = _lib.lib
        self._config = make(config, options)
        self._handler: Optional[Handler] = handler
        self._workers: List[threading.Thread] = []
        self._started = False
        self._start_lock = threading.Lock()
        ptr = _new(lib.mq_push_consumer_new, self._config)
        self._start_native(ptr, lib.mq_push_consumer_close, lib.mq_push_consumer_destroy)

    def subscribe(self, topic: str, expression: str = "*") -> "PushConsumer":
        """Subscribes to ``topic`` with a tag expression (before start)."""
        self._call(_lib.lib.mq_push_consumer_subscribe, topic.encode(), expression.encode())
        return self

    def handler(self, fn: Handler) -> Handler:
        """Sets the message handler; usable as a decorator."""
        self._handler = fn
        return fn

    def start(self, handler: Optional[Handler] = None, threads: Optional[int] = None) -> None:
        """Starts consuming with ``threads`` handler threads (default: the
        ``consume_threads`` config key, else 4) and returns."""
        if handler is not None:
            self._handler = handler
        if self._handler is None:
            raise TypeError("no handler: pass one to start()/run() or use @consumer.handler")
        if threads is None:
            threads = int(self._config.get("consume_threads", 4))  # type: ignore[arg-type]
        if threads < 1:
            raise ValueError("threads must be at least 1")
        with self._start_lock:
            if self._started:
                raise _state_error("the push consumer is started already")
            self._call(_lib.lib.mq_push_consumer_start)
            self._started = True
            for i in range(threads):
                t = threading.Thread(
                    target=self._consume_loop, name=f"mq-consumer-{i}", daemon=True
                )
                self._workers.append(t)
                t.start()

    def run(self, handler: Optional[Handler] = None, threads: Optional[int] = None) -> None:
        """``start()``, then blocks until the consumer is closed (from a
        handler, another thread, or Ctrl-C: then it closes and re-raises
        KeyboardInterrupt)."""
        self.start(handler, threads)
        try:
            while self._n.is_open:
                time.sleep(_native.SLICE)
        except KeyboardInterrupt:
            self.close()
            raise

    def close(self) -> None:
        """Stops the handler threads and closes: batches being handled get
        ``close_timeout_ms`` to finish, then offsets are committed.
        Idempotent. Called from a handler, it starts the close and returns
        (the close ends after the handler returns)."""
        if getattr(_in_handler, "native", None) is self._n:
            self._n.close(False, self._after_close, background=True)
            return
        _native.interruptible(self._n.close, True, self._after_close)

    def _after_close(self) -> None:
        me = threading.current_thread()
        for t in self._workers:
            if t is not me:
                t.join()

    def _consume_loop(self) -> None:
        lib = _lib.lib
        n = self._n
        out = c_void_p()
        _in_handler.native = n
        while True:
            try:
                p = n.acquire(internal=True)
            except MqError:
                return
            try:
                st = lib.mq_push_consumer_poll(p, _native.SLICE_MS, byref(out))
                err = last_error(st) if st else None
            finally:
                n.release()
            if err is not None:
                if isinstance(err, MqClosedError):
                    return
                log.error("mq push consumer poll: %s", err)
                time.sleep(_native.SLICE)
                continue
            batch = out.value
            if not batch:
                continue
            status = ConsumeStatus.LATER
            try:
                status = self._handle(batch_messages(batch))
            finally:
                st = lib.mq_batch_ack(batch, int(status))
                if st:
                    log.warning("mq push consumer ack (counted as LATER): %s", last_error(st))

    def _handle(self, messages: List[Message]) -> ConsumeStatus:
        fn = self._handler
        if fn is None:  # pragma: no cover - start() requires one
            return ConsumeStatus.LATER
        for msg in messages:
            try:
                if fn(msg) is ConsumeStatus.LATER:
                    return ConsumeStatus.LATER
            except Exception:
                log.warning(
                    "mq handler raised on %s (reconsume_times %d): retry later",
                    msg.msg_id,
                    msg.reconsume_times,
                    exc_info=True,
                )
                return ConsumeStatus.LATER
        return ConsumeStatus.SUCCESS


def _state_error(text: str) -> MqError:
    from .errors import MqStateError

    return MqStateError(message=text)


def _queue(q: QueueLike) -> MessageQueue:
    if isinstance(q, MessageQueue):
        return q
    topic, broker, qid = q
    return MessageQueue(str(topic), str(broker), int(qid))


class PullConsumer(_Client):
    """A lite pull consumer: the application polls.

    ::

        with mq.PullConsumer(namesrv_addr=..., group="g2", consume_from="first") as c:
            c.subscribe("Topic")            # or c.assign([MessageQueue(...)])
            for msg in c:                    # until closed
                print(msg.queue_offset, msg.body)

    ``poll(timeout)`` returns up to ``pull_batch_size`` messages of one
    queue (an empty list when none came in time). Positions are committed
    every ``auto_commit_interval_ms`` and at close (``auto_commit=False``:
    by ``commit()``). ``seek``, ``seek_to_timestamp`` and ``committed``
    take a :class:`MessageQueue` (or a ``(topic, broker, queue_id)``
    tuple); ``assignment()`` lists the queues read now. Thread-safe; poll
    waits in 200 ms slices, so Ctrl-C interrupts it.
    """

    _what = "pull consumer"

    def __init__(self, config: Optional[Mapping[str, ConfigValue]] = None, /, **options: ConfigValue) -> None:
        lib = _lib.lib
        self._config = make(config, options)
        self._wakeups = 0
        self._wakeup_lock = threading.Lock()
        ptr = _new(lib.mq_pull_consumer_new, self._config)
        self._start_native(ptr, lib.mq_pull_consumer_close, lib.mq_pull_consumer_destroy)

    def subscribe(self, topic: str, expression: str = "*") -> "PullConsumer":
        """Reads the queues of ``topic`` the group's rebalance gives this
        consumer (not together with ``assign``)."""
        _native.interruptible(
            self._call, _lib.lib.mq_pull_consumer_subscribe, topic.encode(), expression.encode()
        )
        return self

    def assign(self, queues: Iterable[QueueLike]) -> None:
        """Reads exactly ``queues`` (no rebalance), replacing an earlier
        assignment."""
        lib = _lib.lib
        ql = queue_list(_queue(q) for q in queues)
        try:
            _native.interruptible(self._call, lib.mq_pull_consumer_assign, ql)
        finally:
            lib.mq_queue_list_free(ql)

    def assignment(self) -> List[MessageQueue]:
        """The queues this consumer reads now."""
        return _native.interruptible(self._assignment)

    def fetch_queues(self, topic: str) -> List[MessageQueue]:
        """The readable queues of ``topic``, from its route as the
        NameServer has it now (Java's ``fetchMessageQueues``): what to
        choose from for :meth:`assign`. Raises :class:`mq.MqNoRouteError`
        for a topic without a route."""
        return _native.interruptible(self._fetch_queues, topic)

    def _fetch_queues(self, topic: str) -> List[MessageQueue]:
        lib = _lib.lib
        out = c_void_p()
        self._call(lib.mq_pull_consumer_fetch_queues, topic.encode(), byref(out))
        try:
            return read_queue_list(out.value)  # type: ignore[arg-type]
        finally:
            lib.mq_queue_list_free(out.value)

    def _assignment(self) -> List[MessageQueue]:
        lib = _lib.lib
        out = c_void_p()
        self._call(lib.mq_pull_consumer_assignment, byref(out))
        try:
            return read_queue_list(out.value)  # type: ignore[arg-type]
        finally:
            lib.mq_queue_list_free(out.value)

    def poll(self, timeout: Optional[float] = 1.0) -> List[Message]:
        """Up to ``pull_batch_size`` messages of one queue, waiting up to
        ``timeout`` seconds (None: until messages come, ``wakeup()`` or
        close); ``[]`` when none came. Raises MqClosedError once closed."""
        lib = _lib.lib
        deadline = None if timeout is None else time.monotonic() + timeout
        out = c_void_p()
        n = self._n
        while True:
            ms = _native.SLICE_MS
            if deadline is not None:
                ms = max(0, min(ms, int((deadline - time.monotonic()) * 1000)))
            p = n.acquire()
            try:
                st = lib.mq_pull_consumer_poll(p, ms, byref(out))
                if st:
                    raise last_error(st)
            finally:
                n.release()
            batch = out.value
            if batch:
                try:
                    return batch_messages(batch)
                finally:
                    lib.mq_batch_free(batch)
            if self._wakeups:
                with self._wakeup_lock:
                    if self._wakeups:
                        self._wakeups -= 1
                        return []
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def __iter__(self) -> Iterator[Message]:
        """Every message, polled as they come, until the consumer is closed."""
        while True:
            try:
                messages = self.poll(None)
            except MqClosedError:
                return
            yield from messages

    def wakeup(self) -> None:
        """Makes one waiting ``poll`` return now (with what it has)."""
        with self._wakeup_lock:
            self._wakeups += 1
        self._call(_lib.lib.mq_pull_consumer_wakeup)

    def seek(self, queue: QueueLike, offset: int) -> None:
        """Moves ``queue``'s position to ``offset`` (within its min and max)."""
        q = _queue(queue)
        _native.interruptible(
            self._call,
            _lib.lib.mq_pull_consumer_seek,
            q.topic.encode(),
            q.broker_name.encode(),
            q.queue_id,
            int(offset),
        )

    def seek_to_timestamp(self, queue: QueueLike, timestamp: Union[int, float, datetime]) -> None:
        """Moves ``queue``'s position to its first message stored at or after
        ``timestamp`` (ms since the epoch, or a datetime)."""
        if isinstance(timestamp, datetime):
            ms = int(timestamp.timestamp() * 1000)
        else:
            ms = int(timestamp)
        q = _queue(queue)
        _native.interruptible(
            self._call,
            _lib.lib.mq_pull_consumer_seek_to_timestamp,
            q.topic.encode(),
            q.broker_name.encode(),
            q.queue_id,
            ms,
        )

    def commit(self) -> None:
        """Commits, for every assigned queue, the position after what polls
        returned."""
        _native.interruptible(self._call, _lib.lib.mq_pull_consumer_commit)

    def committed(self, queue: QueueLike) -> Optional[int]:
        """The group's committed offset of ``queue`` (None: none yet)."""
        q = _queue(queue)
        offset = c_int64()
        _native.interruptible(
            self._call,
            _lib.lib.mq_pull_consumer_committed,
            q.topic.encode(),
            q.broker_name.encode(),
            q.queue_id,
            byref(offset),
        )
        return None if offset.value < 0 else offset.value
