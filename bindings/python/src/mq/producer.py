"""Producers: :class:`Producer` and :class:`TransactionProducer`."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from concurrent.futures import Future
from ctypes import byref, c_char_p, c_int32, c_void_p
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeVar, Union

from . import _lib, _native
from .config import ConfigValue, make
from .errors import MqClosedError, MqError, MqTimeoutError, from_status, last_error
from .message import (
    _SCRATCH_BODY,
    BytesLike,
    Built,
    Message,
    _body,
    drop_large_body,
    owned_result,
    scratch,
    SendResult,
    TxnState,
    message_of,
    plain_or_message,
    send_result,
    take_send_result,
)

log = logging.getLogger("mq")

_C = TypeVar("_C", bound="_Client")

SendCallback = Callable[[Optional[SendResult], Optional[BaseException]], Any]


def timeout_ms(timeout: Optional[float]) -> int:
    """Seconds (None: the client's default) as libmq's ``timeout_ms``."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 seconds or None")
    return min(int(timeout * 1000), 2**31 - 1)


class _Client:
    """What every client shares: close, context manager, finalizer."""

    _what = "client"
    _n: _native.Native

    def _start_native(self, ptr: int, close: Callable[[int], int], destroy: Callable[[int], None]) -> None:
        self._n = _native.Native(ptr, self._what, close, destroy)
        n = self._n
        self._finalizer = _native.finalizer(self, n, lambda: n.close(wait=False))
        _native.register_closer(n, self.close)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (or in a forked child)."""
        return not self._n.is_open

    def close(self) -> None:
        """Closes the client; idempotent. Calls afterwards raise MqClosedError."""
        _native.interruptible(self._n.close)

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        group = self._config.get("group", "?") if hasattr(self, "_config") else "?"
        n = getattr(self, "_n", None)
        state = "open" if n is not None and n.is_open else "closed"
        return f"<mq.{type(self).__name__} group={group!r} {state}>"

    def _call(self, fn: Callable[..., int], *args: Any) -> None:
        """``fn(handle, *args)`` under a use; raises on a failure status."""
        n = self._n
        p = n.acquire()
        try:
            st = fn(p, *args)
            if st:
                raise last_error(st)
        finally:
            n.release()


def _new(fn: Callable[[int, Any], int], config: Any) -> int:
    _native.check_not_forked("client")  # the child of a libmq process
    out = c_void_p()
    with config._native() as cfg:
        st = fn(cfg, byref(out))
        if st:
            raise last_error(st)
    return out.value  # type: ignore[return-value]


class Producer(_Client):
    """A producer: sync, one-way, ordered, batch and async sends.

    ``Producer(namesrv_addr="127.0.0.1:9876", group="my_producers")`` or
    ``Producer(Config(...), send_timeout_ms=5000)``; any libmq producer key
    (``send_timeout_ms``, ``retry_times_when_send_failed``,
    ``max_inflight_async``, ``close_timeout_ms``, ...). Thread-safe: send
    from as many threads as you like. Use it in a ``with`` block, or
    ``close()`` it (idempotent).

    Every send takes a :class:`Message`, or a topic with ``body`` and
    fields: ``p.send("Topic", b"hi", tags="TagA", keys="k1",
    properties={"a": "b"}, delay_level=2)``.
    """

    _what = "producer"

    def __init__(self, config: Optional[Mapping[str, ConfigValue]] = None, /, **options: ConfigValue) -> None:
        lib = _lib.lib
        self._config = make(config, options)
        self._pending: Dict[int, Tuple["Future[SendResult]", Optional[SendCallback]]] = {}
        self._pending_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._reporter: Optional[threading.Thread] = None
        ptr = _new(lib.mq_producer_new, self._config)
        self._start_native(ptr, lib.mq_producer_close, lib.mq_producer_destroy)

    # -- sync sends ------------------------------------------------------

    def send(
        self,
        message: Union[Message, str],
        body: Optional[BytesLike] = None,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> SendResult:
        """Sends and waits for the broker (retrying on another broker within
        ``timeout`` seconds, default ``send_timeout_ms``)."""
        if fields or type(message) is not str:
            msg = message_of(message, body, fields)
            return _native.interruptible(self._send, msg, None, timeout_ms(timeout))
        # The plain send, the one to make fast: this thread's scratch
        # message, three libmq calls (set_body, send, and the result's free
        # when it is dropped), no Python object but the result. Only the
        # send lets the GIL go (see _lib.held).
        if type(body) is not bytes:
            body = _body(body)
        ms = -1 if timeout is None else timeout_ms(timeout)
        if threading.get_ident() == _native.main_ident:
            return _native.interruptible(self._send_plain, message, body, ms)
        return self._send_plain(message, body, ms)  # type: ignore[arg-type]

    def _send_plain(self, topic: str, body: bytes, ms: int) -> SendResult:
        lib = _lib.lib
        n = self._n
        p = n.acquire()
        try:
            m = scratch(topic)
            st = _lib.held.mq_message_set_body(m, body, len(body))
            if st:
                raise last_error(st)
            out = c_void_p()
            st = lib.mq_producer_send(p, m, ms, byref(out))
            if st:
                raise last_error(st)
        finally:
            n.release()
        if len(body) > _SCRATCH_BODY:
            drop_large_body(m, body)
        return owned_result(out.value)  # type: ignore[arg-type]

    def _send(self, message: Union[Message, str], body: Optional[bytes], ms: int) -> SendResult:
        lib = _lib.lib
        n = self._n
        p = n.acquire()
        try:
            m = Built(message, body)
            try:
                out = c_void_p()
                st = lib.mq_producer_send(p, m.ptr, ms, byref(out))
                if st:
                    raise last_error(st)
            finally:
                m.done()
        finally:
            n.release()
        return take_send_result(out.value)  # type: ignore[arg-type]

    def send_ordered(
        self,
        message: Union[Message, str],
        body: Optional[BytesLike] = None,
        *,
        sharding_key: str,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> SendResult:
        """Sends to the queue ``sharding_key`` hashes to: messages with one
        key are stored, and consumed by an orderly consumer, in order."""
        what, data = plain_or_message(message, body, fields)
        return _native.interruptible(self._send_ordered, what, data, sharding_key, timeout_ms(timeout))

    def _send_ordered(
        self, message: Union[Message, str], body: Optional[bytes], key: str, ms: int
    ) -> SendResult:
        lib = _lib.lib
        m = Built(message, body)
        try:
            out = c_void_p()
            self._call(lib.mq_producer_send_ordered, m.ptr, key.encode(), ms, byref(out))
        finally:
            m.done()
        return take_send_result(out.value)  # type: ignore[arg-type]

    def send_oneway(self, message: Union[Message, str], body: Optional[BytesLike] = None, **fields: Any) -> None:
        """Sends without waiting for the broker's answer (no result, no retry)."""
        what, data = plain_or_message(message, body, fields)
        _native.interruptible(self._send_oneway, what, data)

    def _send_oneway(self, message: Union[Message, str], body: Optional[bytes]) -> None:
        m = Built(message, body)
        try:
            self._call(_lib.lib.mq_producer_send_oneway, m.ptr)
        finally:
            m.done()

    def send_batch(self, messages: Iterable[Message], *, timeout: Optional[float] = None) -> SendResult:
        """Sends messages of one topic as one request (consecutive offsets
        in one queue); the result's ids are comma-joined."""
        return _native.interruptible(self._send_batch, list(messages), timeout_ms(timeout))

    def _send_batch(self, messages: list, ms: int) -> SendResult:
        lib = _lib.lib
        built: list = []
        try:
            for msg in messages:
                built.append(msg._build())
            arr = (c_void_p * len(built))(*built)
            out = c_void_p()
            self._call(lib.mq_producer_send_batch, arr, len(built), ms, byref(out))
        finally:
            for m in built:
                lib.mq_message_free(m)
        return take_send_result(out.value)  # type: ignore[arg-type]

    # -- async sends -----------------------------------------------------

    def send_async(
        self,
        message: Union[Message, str],
        body: Optional[BytesLike] = None,
        *,
        callback: Optional[SendCallback] = None,
        **fields: Any,
    ) -> "Future[SendResult]":
        """Sends in the background and returns a ``Future`` at once.

        The outcome completes the future, and ``callback(result, error)``
        (one of them None) is called, on the producer's report thread
        (``mq-producer-reports``), never on a libmq thread. Raises
        :class:`mq.MqQueueFullError` when ``max_inflight_async`` sends are
        outstanding (it never blocks): ``flush()`` or wait on futures first.
        """
        lib = _lib.lib
        what, data = plain_or_message(message, body, fields)
        future: "Future[SendResult]" = Future()
        future.set_running_or_notify_cancel()
        token = next(self._tokens)
        with self._pending_lock:
            self._pending[token] = (future, callback)
        try:
            m = Built(what, data)
            try:
                self._call(lib.mq_producer_send_async, m.ptr, token)
            finally:
                m.done()
        except BaseException:
            with self._pending_lock:
                self._pending.pop(token, None)
            raise
        self._ensure_reporter()
        return future

    def _ensure_reporter(self) -> None:
        if self._reporter is not None:
            return
        with self._pending_lock:
            if self._reporter is not None:
                return
            t = threading.Thread(
                target=_report_loop,
                args=(self._n, self._pending, self._pending_lock),
                name="mq-producer-reports",
                daemon=True,
            )
            self._reporter = t
        t.start()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Waits until every async send so far has completed (its future is
        done soon after); raises MqTimeoutError after ``timeout`` seconds."""
        lib = _lib.lib
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _native.SLICE_MS
            if deadline is not None:
                left = max(0, min(left, int((deadline - time.monotonic()) * 1000)))
            n = self._n
            p = n.acquire()
            try:
                st = lib.mq_producer_flush(p, left)
                err = last_error(st) if st else None
            finally:
                n.release()
            if err is None:
                return
            if not isinstance(err, MqTimeoutError):
                raise err
            if deadline is not None and time.monotonic() >= deadline:
                raise err

    def close(self) -> None:
        """Waits (up to ``close_timeout_ms``) for async sends in flight,
        completes their futures, and closes; idempotent."""
        _native.interruptible(self._n.close, True, self._after_close)

    def _after_close(self) -> None:
        t = self._reporter
        if t is not None and t is not threading.current_thread():
            t.join()
        with self._pending_lock:
            left = list(self._pending.values())
            self._pending.clear()
        for future, callback in left:
            _complete(future, callback, None, MqClosedError(message="the producer closed before this send completed"))


def _complete(
    future: "Future[SendResult]",
    callback: Optional[SendCallback],
    result: Optional[SendResult],
    error: Optional[BaseException],
) -> None:
    if error is None:
        future.set_result(result)  # type: ignore[arg-type]
    else:
        future.set_exception(error)
    if callback is not None:
        try:
            callback(result, error)
        except Exception:
            log.exception("mq send_async callback raised")


def _report_loop(
    n: _native.Native,
    pending: Dict[int, Tuple["Future[SendResult]", Optional[SendCallback]]],
    lock: threading.Lock,
) -> None:
    """The report thread: polls ``mq_producer_poll`` in slices, completes
    futures and runs callbacks. Ends when the producer is closed and every
    report was taken (libmq's close waits for sends in flight first)."""
    lib = _lib.lib
    out = c_void_p()
    error_text = c_char_p()
    broker = c_int32()
    while True:
        try:
            p = n.acquire(internal=True)
        except MqError:
            return
        try:
            st = lib.mq_producer_poll(p, _native.SLICE_MS, byref(out))
        finally:
            n.release()
        if st:
            return  # MQ_ERR_CLOSED: closed and drained
        rep = out.value
        if not rep:
            continue
        try:
            token = lib.mq_send_report_token(rep)
            status = lib.mq_send_report_status(rep, byref(error_text), byref(broker))
            if status:
                result = None
                detail = error_text.value.decode("utf-8", "replace") if error_text.value else ""
                error: Optional[BaseException] = from_status(status, detail, broker.value)
            else:
                result = send_result(lib.mq_send_report_result(rep))
                error = None
        finally:
            lib.mq_send_report_free(rep)
        with lock:
            entry = pending.pop(token, None)
        if entry is not None:
            _complete(entry[0], entry[1], result, error)


# -- transactions ----------------------------------------------------------

LocalTransaction = Callable[[Message, SendResult], Union[TxnState, bool, None]]
CheckHandler = Callable[[Message], Union[TxnState, bool, None]]


def _state(value: Union[TxnState, bool, None]) -> TxnState:
    if value is None:
        return TxnState.UNKNOWN
    if isinstance(value, bool):
        return TxnState.COMMIT if value else TxnState.ROLLBACK
    return TxnState(value)


class Transaction:
    """A half message waiting for its outcome (from
    :meth:`TransactionProducer.send_half`): ``commit()``, ``rollback()`` or
    ``end(state)`` once, from any thread. Left alone (or collected), the
    broker's check-back decides."""

    def __init__(self, ptr: int) -> None:
        self._lock = threading.Lock()
        self._ptr: Optional[int] = ptr
        #: How the half message was stored.
        self.result: SendResult = send_result(_lib.lib.mq_txn_result(ptr))
        self._finalizer = _native_finalize_txn(self)

    def end(self, state: Union[TxnState, bool, None], *, timeout: Optional[float] = None) -> None:
        """Ends the transaction with ``state`` (True/False: commit/rollback,
        None: unknown, left to the check-back). One-way: it waits only for
        a connection to the broker, at most ``timeout`` seconds (default
        ``send_timeout_ms``)."""
        ms = timeout_ms(timeout)
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is None:
            raise MqClosedError(message="the transaction was ended already")
        self._finalizer.detach()
        _native.check_not_forked("transaction")
        st = _lib.lib.mq_txn_end(ptr, int(_state(state)), ms)
        if st:
            raise last_error(st)

    def commit(self, *, timeout: Optional[float] = None) -> None:
        self.end(TxnState.COMMIT, timeout=timeout)

    def rollback(self, *, timeout: Optional[float] = None) -> None:
        self.end(TxnState.ROLLBACK, timeout=timeout)


def _native_finalize_txn(txn: Transaction) -> Any:
    ptr = txn._ptr

    def free() -> None:
        if not _native.forked():
            _lib.lib.mq_txn_free(ptr)

    return weakref.finalize(txn, free)


class TransactionProducer(_Client):
    """A transactional producer.

    ``send_in_transaction(message, local)`` stores a half message, runs
    ``local(message, send_result)`` (your local transaction) on the calling
    thread, and ends the transaction with what it returns: a
    :class:`TxnState`, True (commit), False (rollback) or None (unknown: the
    broker checks back). When the broker checks back, ``check(message)``
    (the ``check`` argument, or a function decorated with
    ``@producer.check_handler``) is called on the producer's own thread
    (``mq-txn-checks``) and answers the same way; an exception answers
    UNKNOWN (the broker asks again later).
    """

    _what = "transaction producer"

    def __init__(
        self,
        config: Optional[Mapping[str, ConfigValue]] = None,
        /,
        check: Optional[CheckHandler] = None,
        **options: ConfigValue,
    ) -> None:
        lib = _lib.lib
        self._config = make(config, options)
        self._check: Optional[CheckHandler] = check
        ptr = _new(lib.mq_txn_producer_new, self._config)
        self._start_native(ptr, lib.mq_txn_producer_close, lib.mq_txn_producer_destroy)
        # The thread holds the producer weakly: a producer the program
        # forgot is still collected (and closed, with a ResourceWarning).
        me = weakref.ref(self)

        def handler() -> Optional[CheckHandler]:
            producer = me()
            return producer._check if producer is not None else None

        self._checker = threading.Thread(
            target=_check_loop, args=(self._n, handler), name="mq-txn-checks", daemon=True
        )
        self._checker.start()

    def check_handler(self, fn: CheckHandler) -> CheckHandler:
        """Sets the check-back handler (usable as a decorator)."""
        self._check = fn
        return fn

    def send_half(
        self,
        message: Union[Message, str],
        body: Optional[BytesLike] = None,
        *,
        timeout: Optional[float] = None,
        **fields: Any,
    ) -> Transaction:
        """Stores a half message (invisible to consumers) within ``timeout``
        seconds (default ``send_timeout_ms``) and returns its
        :class:`Transaction` to end."""
        msg = message_of(message, body, fields)
        return _native.interruptible(self._send_half, msg, timeout_ms(timeout))

    def _send_half(self, message: Message, ms: int) -> Transaction:
        lib = _lib.lib
        m = message._build()
        try:
            out = c_void_p()
            self._call(lib.mq_txn_producer_send_half, m, ms, byref(out))
        finally:
            lib.mq_message_free(m)
        return Transaction(out.value)  # type: ignore[arg-type]

    def send_in_transaction(
        self,
        message: Union[Message, str],
        local: LocalTransaction,
        body: Optional[BytesLike] = None,
        **fields: Any,
    ) -> Tuple[SendResult, TxnState]:
        """Half message, local transaction, end: returns the send result and
        the state the transaction was ended with. If ``local`` raises, the
        transaction is ended UNKNOWN (the check-back decides) and the
        exception propagates."""
        msg = message_of(message, body, fields)
        txn = self.send_half(msg)
        try:
            state = _state(local(msg, txn.result))
        except BaseException:
            _native.interruptible(txn.end, TxnState.UNKNOWN)
            raise
        _native.interruptible(txn.end, state)
        return txn.result, state

    def close(self) -> None:
        """Closes; pending check-backs are answered UNKNOWN. Idempotent."""
        _native.interruptible(self._n.close, True, self._after_close)

    def _after_close(self) -> None:
        if self._checker is not threading.current_thread():
            self._checker.join()


def _check_loop(n: _native.Native, handler: Callable[[], Optional[CheckHandler]]) -> None:
    lib = _lib.lib
    out = c_void_p()
    warned = False
    while True:
        try:
            p = n.acquire(internal=True)
        except MqError:
            return
        try:
            st = lib.mq_txn_producer_poll_check(p, _native.SLICE_MS, byref(out))
        finally:
            n.release()
        if st:
            return  # closed
        check_ptr = out.value
        if not check_ptr:
            continue
        state = TxnState.UNKNOWN
        try:
            msg = Message._received(lib.mq_txn_check_message(check_ptr))
            fn = handler()
            if fn is None:
                if not warned:
                    log.warning("transaction check-back without a check handler: answered UNKNOWN")
                    warned = True
            else:
                state = _state(fn(msg))
        except BaseException:
            log.exception("mq transaction check handler raised: answered UNKNOWN")
            state = TxnState.UNKNOWN
        st = lib.mq_txn_check_answer(check_ptr, int(state))
        if st:
            log.warning("answering a transaction check-back: %s", last_error(st))
