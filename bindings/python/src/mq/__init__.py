"""mq: the Python client of mq, a RocketMQ-compatible message queue.

A thin layer of ctypes over libmq (``libmq.so.1``, the C ABI of mq's Rust
client): no compiled extension. libmq is found through the environment
variable ``MQ_LIBRARY``, then in this package's directory, then on the
system library path.

::

    import mq

    with mq.Producer(namesrv_addr="127.0.0.1:9876", group="my_producers") as p:
        result = p.send("Demo", b"hello", tags="TagA", keys="order-1")

    with mq.PullConsumer(namesrv_addr="127.0.0.1:9876", group="g1",
                         consume_from="first") as c:
        c.subscribe("Demo")
        for msg in c.poll(timeout=5):
            print(msg.msg_id, msg.body)

Threads: libmq never calls Python. Async-send outcomes, push batches and
transaction check-backs are polled by the binding's own threads, which run
your callbacks and handlers; every libmq call releases the GIL, and a
blocking call waits in slices of at most 200 ms, so Ctrl-C interrupts it.

Errors are :class:`MqError` subclasses, one per libmq status
(:class:`MqTimeoutError`, :class:`MqClosedError`, ...). Clients are context
managers with an idempotent ``close()``; what is still open is closed at
exit. In a process forked from one that used mq, every client raises
:class:`MqForkedError`: create clients after forking.
"""

from __future__ import annotations

from ._lib import MqLibraryError
from ._lib import path as library_path
from ._lib import version as library_version
from .config import Config
from .consumer import PullConsumer, PushConsumer
from .errors import (
    MqBrokerError,
    MqClosedError,
    MqConfigError,
    MqDecodeError,
    MqError,
    MqForkedError,
    MqInvalidArgError,
    MqIoError,
    MqNoNamesrvError,
    MqNoRouteError,
    MqNullError,
    MqPanicError,
    MqQueueFullError,
    MqStateError,
    MqTimeoutError,
    MqTransportError,
    MqUnknownError,
)
from .message import ConsumeStatus, Message, MessageQueue, SendResult, SendStatus, TxnState
from .producer import Producer, Transaction, TransactionProducer

__version__ = "0.1.0"

#: Shorthands for handlers: ``return mq.LATER`` asks for a redelivery
#: without raising.
SUCCESS = ConsumeStatus.SUCCESS
LATER = ConsumeStatus.LATER

__all__ = [
    "Config",
    "ConsumeStatus",
    "LATER",
    "Message",
    "MessageQueue",
    "MqBrokerError",
    "MqClosedError",
    "MqConfigError",
    "MqDecodeError",
    "MqError",
    "MqForkedError",
    "MqInvalidArgError",
    "MqIoError",
    "MqLibraryError",
    "MqNoNamesrvError",
    "MqNoRouteError",
    "MqNullError",
    "MqPanicError",
    "MqQueueFullError",
    "MqStateError",
    "MqTimeoutError",
    "MqTransportError",
    "MqUnknownError",
    "Producer",
    "PullConsumer",
    "PushConsumer",
    "SUCCESS",
    "SendResult",
    "SendStatus",
    "Transaction",
    "TransactionProducer",
    "TxnState",
    "library_path",
    "library_version",
]
