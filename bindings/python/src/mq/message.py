"""Messages, send results and queues, as plain Python objects.

A received :class:`Message` is a copy: every field is read out of libmq (one
``mq_message_view`` call, plus one call per property) before its batch is
acked or freed, so it stays valid for as long as Python keeps it.
"""

from __future__ import annotations

import enum
import threading
from ctypes import byref, c_char_p, c_int32, c_int64, c_void_p, sizeof, string_at
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

from . import _lib
from .errors import MqInvalidArgError, check, last_error

BytesLike = Union[bytes, bytearray, memoryview, str]


class SendStatus(enum.IntEnum):
    """How the broker stored a message (``MQ_SEND_*``)."""

    OK = 0
    FLUSH_DISK_TIMEOUT = 1
    FLUSH_SLAVE_TIMEOUT = 2
    SLAVE_NOT_AVAILABLE = 3


class TxnState(enum.IntEnum):
    """The outcome of a local transaction (``MQ_TXN_*``)."""

    COMMIT = 0
    ROLLBACK = 1
    UNKNOWN = 2


class ConsumeStatus(enum.IntEnum):
    """How a push batch was consumed (``MQ_CONSUME_*``). A handler returns
    normally for SUCCESS, and raises (or returns ``LATER``) for LATER."""

    SUCCESS = 0
    LATER = 1


class MessageQueue(NamedTuple):
    """A queue: topic, broker name and queue id."""

    topic: str
    broker_name: str
    queue_id: int


def _body(body: Optional[BytesLike]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a message body is bytes or str, not {type(body).__name__}")


def _keys(keys: Union[None, str, Sequence[str]]) -> Optional[str]:
    if keys is None or isinstance(keys, str):
        return keys
    return " ".join(keys)


class Message:
    """A message: built to send, or received (then every field is set).

    ``Message("Topic", b"body", tags="TagA", keys=["order-1"],
    properties={"k": "v"}, delay_level=3, flag=7)``. ``body`` may be bytes
    or str (UTF-8) and may contain NUL bytes. ``keys`` is a space-separated
    string or a list of keys. ``flag`` is the user flag (an int32 the
    broker stores and consumers read back).
    """

    __slots__ = (
        "topic",
        "body",
        "tags",
        "keys",
        "properties",
        "delay_level",
        "msg_id",
        "offset_msg_id",
        "broker_name",
        "queue_id",
        "queue_offset",
        "commit_log_offset",
        "reconsume_times",
        "born_timestamp",
        "store_timestamp",
        "born_host",
        "store_host",
        "flag",
        "sys_flag",
    )

    topic: str
    body: bytes
    tags: Optional[str]
    keys: Optional[str]
    properties: Dict[str, str]
    delay_level: int
    #: The message id (UNIQ_KEY, else the offset id); None until received.
    msg_id: Optional[str]
    offset_msg_id: Optional[str]
    broker_name: Optional[str]
    queue_id: int
    queue_offset: int
    commit_log_offset: int
    #: Deliveries before this one (0 on the first).
    reconsume_times: int
    #: ms since the epoch; 0 until received.
    born_timestamp: int
    store_timestamp: int
    born_host: Optional[str]
    store_host: Optional[str]
    flag: int
    sys_flag: int

    def __init__(
        self,
        topic: str,
        body: Optional[BytesLike] = None,
        *,
        tags: Optional[str] = None,
        keys: Union[None, str, Sequence[str]] = None,
        properties: Optional[Dict[str, str]] = None,
        delay_level: int = 0,
        flag: int = 0,
    ) -> None:
        self.topic = topic
        self.body = _body(body)
        self.tags = tags
        self.keys = _keys(keys)
        self.properties = dict(properties) if properties else {}
        self.delay_level = delay_level
        self.msg_id = None
        self.offset_msg_id = None
        self.broker_name = None
        self.queue_id = -1
        self.queue_offset = -1
        self.commit_log_offset = -1
        self.reconsume_times = 0
        self.born_timestamp = 0
        self.store_timestamp = 0
        self.born_host = None
        self.store_host = None
        self.flag = flag
        self.sys_flag = 0

    @property
    def queue(self) -> Optional[MessageQueue]:
        """The queue a received message came from."""
        if self.broker_name is None:
            return None
        return MessageQueue(self.topic, self.broker_name, self.queue_id)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        parts = [f"topic={self.topic!r}"]
        if self.msg_id:
            parts.append(f"msg_id={self.msg_id!r}")
        if self.tags:
            parts.append(f"tags={self.tags!r}")
        if self.keys:
            parts.append(f"keys={self.keys!r}")
        if self.queue_offset >= 0:
            parts.append(f"queue={self.broker_name}:{self.queue_id}@{self.queue_offset}")
        if self.reconsume_times:
            parts.append(f"reconsume_times={self.reconsume_times}")
        body = self.body if len(self.body) <= 32 else self.body[:32] + b"..."
        parts.append(f"body={body!r}")
        return f"Message({', '.join(parts)})"

    # -- to and from libmq ---------------------------------------------

    def _build(self) -> int:
        """A new ``mq_message_t`` with this message's fields; the caller
        frees it with ``mq_message_free``."""
        lib = _lib.lib
        out = c_void_p()
        if not self.topic:
            raise MqInvalidArgError(message="a message needs a topic")
        st = lib.mq_message_new(self.topic.encode(), byref(out))
        if st:
            raise last_error(st)
        m = out.value
        try:
            body = self.body
            st = lib.mq_message_set_body(m, body, len(body))
            if st:
                raise last_error(st)
            if self.tags:
                check(lib.mq_message_set_tags(m, self.tags.encode()))
            if self.keys:
                check(lib.mq_message_set_keys(m, self.keys.encode()))
            for name, value in self.properties.items():
                check(lib.mq_message_set_property(m, name.encode(), str(value).encode()))
            if self.delay_level:
                check(lib.mq_message_set_delay_level(m, self.delay_level))
            if self.flag:
                check(lib.mq_message_set_flag(m, self.flag))
        except BaseException:
            lib.mq_message_free(m)
            raise
        return m  # type: ignore[return-value]

    @classmethod
    def _received(cls, ptr: int) -> "Message":
        """A copy of the received message at ``ptr`` (every field)."""
        lib = _lib.lib
        v = _lib.MessageView()
        st = lib.mq_message_view(ptr, byref(v), sizeof(v))
        if st:
            raise last_error(st)
        m = cls.__new__(cls)
        m.topic = v.topic.decode("utf-8", "replace") if v.topic else ""
        m.body = string_at(v.body, v.body_len) if v.body_len else b""
        m.tags = _str(v.tags)
        m.keys = _str(v.keys)
        m.delay_level = 0
        m.msg_id = _str(v.msg_id)
        m.offset_msg_id = _str(v.offset_msg_id)
        m.broker_name = _str(v.broker_name)
        m.queue_id = v.queue_id
        m.queue_offset = v.queue_offset
        m.commit_log_offset = v.commit_log_offset
        m.reconsume_times = v.reconsume_times
        m.born_timestamp = v.born_timestamp
        m.store_timestamp = v.store_timestamp
        m.born_host = _str(v.born_host)
        m.store_host = _str(v.store_host)
        m.flag = v.flag
        m.sys_flag = v.sys_flag
        props: Dict[str, str] = {}
        n = v.property_count
        if n:
            name, value = c_char_p(), c_char_p()
            at = lib.mq_message_property_at
            for i in range(n):
                st = at(ptr, i, byref(name), byref(value))
                if st:
                    raise last_error(st)
                props[_str(name.value) or ""] = _str(value.value) or ""
        m.properties = props
        return m


def _str(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode("utf-8", "replace")


# Plain sends (a topic and a body, nothing else) reuse a built message of
# their thread per topic: one libmq call (set_body) instead of three (new,
# set_body, free). At most this many topics per thread; bodies larger than
# _SCRATCH_BODY are dropped from the message after the send.
_scratch = threading.local()
_SCRATCH_TOPICS = 8
_SCRATCH_BODY = 64 * 1024


class _Scratch:
    """A built ``mq_message_t`` owned by one thread's cache."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __del__(self) -> None:
        try:
            _lib.lib.mq_message_free(self.ptr)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def scratch(topic: str) -> int:
    """This thread's built message for ``topic`` (its body is whatever the
    last send set)."""
    try:
        return _scratch.cache[topic].ptr  # type: ignore[no-any-return]
    except (AttributeError, KeyError):
        pass
    cache = getattr(_scratch, "cache", None)
    if cache is None:
        cache = _scratch.cache = {}
    if not topic:
        raise MqInvalidArgError(message="a message needs a topic")
    out = c_void_p()
    st = _lib.lib.mq_message_new(topic.encode(), byref(out))
    if st:
        raise last_error(st)
    s = _Scratch(out.value)  # type: ignore[arg-type]
    if len(cache) >= _SCRATCH_TOPICS:
        del cache[next(iter(cache))]
    cache[topic] = s
    return s.ptr


def _scratch_message(topic: str, body: bytes) -> int:
    m = scratch(topic)
    st = _lib.lib.mq_message_set_body(m, body, len(body))
    if st:
        raise last_error(st)
    return m


def drop_large_body(m: int, body: bytes) -> None:
    """After a send of a large body through the scratch message: let go of
    the body's copy in libmq."""
    if len(body) > _SCRATCH_BODY:
        _lib.lib.mq_message_set_body(m, None, 0)


class Built:
    """A native message for one send: a built one (freed after) or the
    thread's scratch message for plain (topic, body) sends."""

    __slots__ = ("ptr", "_owned", "_large")

    def __init__(self, message: Union[Message, str], body: Optional[bytes]) -> None:
        if body is None:
            self.ptr = message._build()  # type: ignore[union-attr]
            self._owned = True
            self._large = False
        else:
            self.ptr = _scratch_message(message, body)  # type: ignore[arg-type]
            self._owned = False
            self._large = len(body) > _SCRATCH_BODY

    def done(self) -> None:
        if self._owned:
            _lib.lib.mq_message_free(self.ptr)
        elif self._large:
            _lib.lib.mq_message_set_body(self.ptr, None, 0)


def owned_result(ptr: int) -> "SendResult":
    r = SendResult.__new__(SendResult)
    r._ptr = ptr
    return r


def plain_or_message(
    message: Union[Message, str],
    body: Optional[BytesLike],
    fields: Dict[str, object],
) -> "tuple[Union[Message, str], Optional[bytes]]":
    """What a send was given: ``(topic, body bytes)`` for a plain send
    (a topic and a body only), else ``(Message, None)``."""
    if not fields and type(message) is str:
        return message, _body(body)
    return message_of(message, body, fields), None


def message_of(
    message: Union[Message, str],
    body: Optional[BytesLike],
    fields: Dict[str, object],
) -> Message:
    """``send(Message)`` or ``send("Topic", body, tags=...)``."""
    if isinstance(message, Message):
        if body is not None or fields:
            raise TypeError("give either a Message or a topic with body and fields, not both")
        return message
    if not isinstance(message, str):
        raise TypeError(f"send takes a Message or a topic, not {type(message).__name__}")
    return Message(message, body, **fields)  # type: ignore[arg-type]


_FIELDS = (
    "status",
    "msg_id",
    "offset_msg_id",
    "topic",
    "broker_name",
    "queue_id",
    "queue_offset",
    "transaction_id",
)

# Reading a result out of libmq happens once, under this lock (two threads
# reading one result must not both read and free it).
_load_lock = threading.Lock()
_status_values = {s.value: s for s in SendStatus}


class SendResult:
    """How the broker stored a message (for a batch: ids comma-joined).

    Attributes: ``status`` (:class:`SendStatus`), ``msg_id`` (the id
    consumers see), ``offset_msg_id``, ``topic``, ``broker_name``,
    ``queue_id``, ``queue_offset`` (of the first message of a batch),
    ``transaction_id`` (of a half message, else None), and ``queue``.

    A sync send returns the result unread: its fields are copied out of
    libmq on first access (one ``mq_send_result_view`` call, then it is
    freed), so a sender that ignores results crosses into libmq once for
    it (the free) instead of twice.
    """

    __slots__ = ("_ptr",) + tuple("_" + f for f in _FIELDS)

    status: SendStatus
    msg_id: Optional[str]
    offset_msg_id: Optional[str]
    topic: Optional[str]
    broker_name: Optional[str]
    queue_id: int
    queue_offset: int
    transaction_id: Optional[str]

    def __init__(
        self,
        status: SendStatus,
        msg_id: Optional[str],
        offset_msg_id: Optional[str],
        topic: Optional[str],
        broker_name: Optional[str],
        queue_id: int,
        queue_offset: int,
        transaction_id: Optional[str] = None,
    ) -> None:
        self._ptr: Optional[int] = None
        self._status = status
        self._msg_id = msg_id
        self._offset_msg_id = offset_msg_id
        self._topic = topic
        self._broker_name = broker_name
        self._queue_id = queue_id
        self._queue_offset = queue_offset
        self._transaction_id = transaction_id

    @classmethod
    def _owning(cls, ptr: int) -> "SendResult":
        """A result that owns ``mq_send_result_t`` ``ptr``, read lazily."""
        r = cls.__new__(cls)
        r._ptr = ptr
        return r

    def _load(self) -> None:
        with _load_lock:
            ptr = self._ptr
            if ptr is None:
                return
            try:
                _read_into(self, ptr)
            finally:
                self._ptr = None
                _lib.held.mq_send_result_free(ptr)

    def __del__(self) -> None:
        ptr = self._ptr
        if ptr is not None:
            self._ptr = None
            try:
                _lib.held.mq_send_result_free(ptr)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def _values(self) -> tuple:
        if self._ptr is not None:
            self._load()
        return tuple(getattr(self, "_" + f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SendResult):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = self._values()
        inner = ", ".join(f"{f}={v!r}" for f, v in zip(_FIELDS, values))
        return f"SendResult({inner})"

    @property
    def queue(self) -> MessageQueue:
        """The queue the message went to."""
        return MessageQueue(self.topic or "", self.broker_name or "", self.queue_id)


def _field(name: str) -> property:
    slot = "_" + name

    def get(self: SendResult) -> Any:
        if self._ptr is not None:
            self._load()
        return getattr(self, slot)

    get.__name__ = name
    return property(get)


for _f in _FIELDS:
    setattr(SendResult, _f, _field(_f))
del _f


def _read_into(r: SendResult, ptr: int) -> None:
    """Every field of ``mq_send_result_t`` ``ptr``, in one libmq call."""
    v = _lib.SendResultView()
    check(_lib.held.mq_send_result_view(ptr, byref(v), sizeof(v)))
    r._status = _status_values.get(v.status, v.status)  # type: ignore[assignment]
    r._msg_id = _str(v.msg_id)
    r._offset_msg_id = _str(v.offset_msg_id)
    r._topic = _str(v.topic)
    r._broker_name = _str(v.broker_name)
    r._queue_id = v.queue_id
    r._queue_offset = v.queue_offset
    r._transaction_id = _str(v.transaction_id)


def send_result(ptr: int) -> SendResult:
    """A copy of the borrowed ``mq_send_result_t`` at ``ptr`` (not freed)."""
    r = SendResult.__new__(SendResult)
    r._ptr = None
    _read_into(r, ptr)
    return r


def take_send_result(ptr: int) -> SendResult:
    """An owned result, read on first access and freed then (or when it is
    collected unread)."""
    return SendResult._owning(ptr)


def batch_messages(batch: int) -> List[Message]:
    """Copies of every message of ``mq_batch_t`` ``batch`` (not freed)."""
    lib = _lib.lib
    n = lib.mq_batch_len(batch)
    get = lib.mq_batch_get
    received = Message._received
    return [received(get(batch, i)) for i in range(n)]


def queue_list(queues: Iterable[Union[MessageQueue, Sequence[object]]]) -> int:
    """A new ``mq_queue_list_t`` (the caller frees it)."""
    lib = _lib.lib
    out = c_void_p()
    check(lib.mq_queue_list_new(byref(out)))
    ql = out.value
    try:
        for q in queues:
            topic, broker, qid = q  # type: ignore[misc]
            check(lib.mq_queue_list_add(ql, str(topic).encode(), str(broker).encode(), int(qid)))  # type: ignore[call-overload]
    except BaseException:
        lib.mq_queue_list_free(ql)
        raise
    return ql  # type: ignore[return-value]


def read_queue_list(ql: int) -> List[MessageQueue]:
    lib = _lib.lib
    topic, broker, qid = c_char_p(), c_char_p(), c_int32()
    queues = []
    for i in range(lib.mq_queue_list_len(ql)):
        check(lib.mq_queue_list_get(ql, i, byref(topic), byref(broker), byref(qid)))
        queues.append(MessageQueue(_str(topic.value) or "", _str(broker.value) or "", qid.value))
    return queues
