"""Loading libmq and declaring every function of ``mq.h`` for ctypes.

The library is looked for, in order:

1. the file named by the environment variable ``MQ_LIBRARY``;
2. ``libmq.so.1`` (or ``libmq.so``) in this package's directory;
3. the system library path, through ``ctypes.util.find_library("mq")``.

It is loaded with :class:`ctypes.CDLL`, which releases the GIL for the
duration of every call: a call that blocks in libmq blocks only its own
thread. A few calls on the send path go through :data:`held`, the same
library loaded with :class:`ctypes.PyDLL`, which keeps the GIL: see there. Every function gets ``argtypes`` and ``restype`` here
(a missing ``restype`` is ``int`` and would cut 64-bit pointers);
``tests/test_header.py`` parses ``include/mq.h`` and checks that this table
covers every declared function with the same arity and types.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Dict, List, Optional, Tuple

#: The major version of libmq this binding is written for
#: (``MQ_VERSION_MAJOR``); checked against ``mq_version() >> 16`` at load.
EXPECTED_MAJOR = 0

#: Status codes the binding itself needs (the rest come from the library's
#: table through ``mq_status_name``). The header test checks them.
MQ_OK = 0
MQ_ERR_TIMEOUT = 4
MQ_ERR_CLOSED = 10
MQ_ERR_QUEUE_FULL = 12
MQ_ERR_FORKED = 13


class MqLibraryError(ImportError):
    """libmq could not be found or loaded, or its version does not fit."""


class MessageView(Structure):
    """``mq_message_view_t``: every field of a message in one call.

    Fields are only ever appended by libmq; the binding passes its own
    ``sizeof`` so that a newer library fills only what is declared here.
    """

    _fields_ = [
        ("topic", c_char_p),
        ("tags", c_char_p),
        ("keys", c_char_p),
        ("body", c_void_p),
        ("body_len", c_size_t),
        ("msg_id", c_char_p),
        ("offset_msg_id", c_char_p),
        ("broker_name", c_char_p),
        ("queue_id", c_int32),
        ("reconsume_times", c_int32),
        ("queue_offset", c_int64),
        ("commit_log_offset", c_int64),
        ("born_timestamp", c_int64),
        ("store_timestamp", c_int64),
        ("born_host", c_char_p),
        ("store_host", c_char_p),
        ("flag", c_int32),
        ("sys_flag", c_int32),
        ("property_count", c_size_t),
    ]


class SendResultView(Structure):
    """``mq_send_result_view_t``: every field of a send result in one call
    (appended to as ``MessageView`` is)."""

    _fields_ = [
        ("status", c_int32),
        ("queue_id", c_int32),
        ("queue_offset", c_int64),
        ("msg_id", c_char_p),
        ("offset_msg_id", c_char_p),
        ("topic", c_char_p),
        ("broker_name", c_char_p),
        ("transaction_id", c_char_p),
    ]


#: ``mq_report_handler_t`` and ``mq_batch_handler_t``, the handlers of the
#: serve functions: sugar for C programs, which this binding does not call
#: (it polls), bound so that the table covers the whole header.
REPORT_HANDLER = CFUNCTYPE(None, c_void_p, c_void_p)
BATCH_HANDLER = CFUNCTYPE(c_int32, c_void_p, c_void_p)

_P = c_void_p  # any opaque handle or object pointer
_S = c_char_p  # a NUL-terminated string (in: bytes; out: bytes or None)
_PP = POINTER(c_void_p)  # T **out
_PS = POINTER(c_char_p)  # const char **out
_PI32 = POINTER(c_int32)
_PI64 = POINTER(c_int64)
_PSZ = POINTER(c_size_t)
_ST = c_int32  # mq_status_t

#: name -> (restype, argtypes): one entry per function of mq.h.
SIGNATURES: Dict[str, Tuple[object, List[object]]] = {
    # version and errors
    "mq_status_name": (_S, [_ST]),
    "mq_status_str": (_S, [_ST]),
    "mq_last_error": (_S, []),
    "mq_last_error_copy": (c_size_t, [_S, c_size_t]),
    "mq_last_error_broker_code": (c_int32, []),
    "mq_version": (c_uint32, []),
    "mq_version_str": (_S, []),
    # config
    "mq_config_new": (_ST, [_PP]),
    "mq_config_set": (_ST, [_P, _S, _S]),
    "mq_config_get": (_S, [_P, _S]),
    "mq_config_free": (None, [_P]),
    # messages
    "mq_message_new": (_ST, [_S, _PP]),
    "mq_message_set_body": (_ST, [_P, _S, c_size_t]),
    "mq_message_set_tags": (_ST, [_P, _S]),
    "mq_message_set_keys": (_ST, [_P, _S]),
    "mq_message_set_property": (_ST, [_P, _S, _S]),
    "mq_message_set_flag": (_ST, [_P, c_int32]),
    "mq_message_set_delay_level": (_ST, [_P, c_int32]),
    "mq_message_topic": (_S, [_P]),
    "mq_message_tags": (_S, [_P]),
    "mq_message_keys": (_S, [_P]),
    "mq_message_body": (c_void_p, [_P, _PSZ]),
    "mq_message_property": (_S, [_P, _S]),
    "mq_message_property_count": (c_size_t, [_P]),
    "mq_message_property_at": (_ST, [_P, c_size_t, _PS, _PS]),
    "mq_message_id": (_S, [_P]),
    "mq_message_offset_id": (_S, [_P]),
    "mq_message_queue": (_ST, [_P, _PS, _PI32, _PI64]),
    "mq_message_timestamps": (_ST, [_P, _PI64, _PI64]),
    "mq_message_hosts": (_ST, [_P, _PS, _PS]),
    "mq_message_reconsume_times": (c_int32, [_P]),
    "mq_message_view": (_ST, [_P, POINTER(MessageView), c_size_t]),
    "mq_message_free": (None, [_P]),
    # producer
    "mq_producer_new": (_ST, [_P, _PP]),
    "mq_producer_send": (_ST, [_P, _P, c_int32, _PP]),
    "mq_producer_send_ordered": (_ST, [_P, _P, _S, c_int32, _PP]),
    "mq_producer_send_oneway": (_ST, [_P, _P]),
    "mq_producer_send_batch": (_ST, [_P, _PP, c_size_t, c_int32, _PP]),
    "mq_producer_send_async": (_ST, [_P, _P, c_uint64]),
    "mq_producer_poll": (_ST, [_P, c_int32, _PP]),
    "mq_producer_serve": (_ST, [_P, c_int32, REPORT_HANDLER, c_void_p, _PSZ]),
    "mq_producer_flush": (_ST, [_P, c_int32]),
    "mq_producer_set_report_fd": (_ST, [_P, c_int32]),
    "mq_producer_close": (_ST, [_P]),
    "mq_producer_destroy": (None, [_P]),
    # send results and reports
    "mq_send_result_status": (c_int32, [_P]),
    "mq_send_result_msg_id": (_S, [_P]),
    "mq_send_result_offset_msg_id": (_S, [_P]),
    "mq_send_result_transaction_id": (_S, [_P]),
    "mq_send_result_queue": (_ST, [_P, _PS, _PS, _PI32, _PI64]),
    "mq_send_result_view": (_ST, [_P, POINTER(SendResultView), c_size_t]),
    "mq_send_result_free": (None, [_P]),
    "mq_send_report_token": (c_uint64, [_P]),
    "mq_send_report_status": (_ST, [_P, _PS, _PI32]),
    "mq_send_report_result": (c_void_p, [_P]),
    "mq_send_report_free": (None, [_P]),
    # transactional producer
    "mq_txn_producer_new": (_ST, [_P, _PP]),
    "mq_txn_producer_send_half": (_ST, [_P, _P, c_int32, _PP]),
    "mq_txn_result": (c_void_p, [_P]),
    "mq_txn_end": (_ST, [_P, c_int32, c_int32]),
    "mq_txn_free": (None, [_P]),
    "mq_txn_producer_poll_check": (_ST, [_P, c_int32, _PP]),
    "mq_txn_check_message": (c_void_p, [_P]),
    "mq_txn_check_answer": (_ST, [_P, c_int32]),
    "mq_txn_check_free": (None, [_P]),
    "mq_txn_producer_close": (_ST, [_P]),
    "mq_txn_producer_destroy": (None, [_P]),
    # push consumer
    "mq_push_consumer_new": (_ST, [_P, _PP]),
    "mq_push_consumer_subscribe": (_ST, [_P, _S, _S]),
    "mq_push_consumer_start": (_ST, [_P]),
    "mq_push_consumer_poll": (_ST, [_P, c_int32, _PP]),
    "mq_push_consumer_serve": (_ST, [_P, c_int32, BATCH_HANDLER, c_void_p, _PSZ]),
    "mq_push_consumer_wakeup": (_ST, [_P]),
    "mq_push_consumer_close": (_ST, [_P]),
    "mq_push_consumer_destroy": (None, [_P]),
    # batches
    "mq_batch_len": (c_size_t, [_P]),
    "mq_batch_get": (c_void_p, [_P, c_size_t]),
    "mq_batch_ack": (_ST, [_P, c_int32]),
    "mq_batch_free": (None, [_P]),
    # pull consumer
    "mq_pull_consumer_new": (_ST, [_P, _PP]),
    "mq_pull_consumer_subscribe": (_ST, [_P, _S, _S]),
    "mq_pull_consumer_fetch_queues": (_ST, [_P, _S, _PP]),
    "mq_pull_consumer_assign": (_ST, [_P, _P]),
    "mq_pull_consumer_assignment": (_ST, [_P, _PP]),
    "mq_pull_consumer_poll": (_ST, [_P, c_int32, _PP]),
    "mq_pull_consumer_seek": (_ST, [_P, _S, _S, c_int32, c_int64]),
    "mq_pull_consumer_seek_to_timestamp": (_ST, [_P, _S, _S, c_int32, c_int64]),
    "mq_pull_consumer_commit": (_ST, [_P]),
    "mq_pull_consumer_committed": (_ST, [_P, _S, _S, c_int32, _PI64]),
    "mq_pull_consumer_wakeup": (_ST, [_P]),
    "mq_pull_consumer_close": (_ST, [_P]),
    "mq_pull_consumer_destroy": (None, [_P]),
    # queue lists
    "mq_queue_list_new": (_ST, [_PP]),
    "mq_queue_list_add": (_ST, [_P, _S, _S, c_int32]),
    "mq_queue_list_len": (c_size_t, [_P]),
    "mq_queue_list_get": (_ST, [_P, c_size_t, _PS, _PS, _PI32]),
    "mq_queue_list_free": (None, [_P]),
}

_LIB_NAMES = ("libmq.so.1", "libmq.so", "libmq.dylib")


def _candidates() -> List[Tuple[str, str]]:
    """Where to look, in order: (how it was found, path or name)."""
    found: List[Tuple[str, str]] = []
    env = os.environ.get("MQ_LIBRARY")
    if env:
        found.append(("MQ_LIBRARY", env))
        return found  # an explicit choice: no fallback that would hide a typo
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _LIB_NAMES:
        path = os.path.join(here, name)
        if os.path.exists(path):
            found.append(("package directory", path))
    system = ctypes.util.find_library("mq")
    if system:
        found.append(("system library path", system))
    return found


def _load() -> Tuple[ctypes.CDLL, str]:
    candidates = _candidates()
    if not candidates:
        here = os.path.dirname(os.path.abspath(__file__))
        raise MqLibraryError(
            "libmq not found: set MQ_LIBRARY to the path of libmq.so (cargo "
            "build -p mq-capi puts it in target/debug/), or put libmq.so.1 in "
            f"{here}, or install it on the system library path (ldconfig)"
        )
    errors = []
    for how, path in candidates:
        if how == "MQ_LIBRARY" and not os.path.exists(path):
            raise MqLibraryError(f"MQ_LIBRARY={path!r}: no such file")
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path} ({how}): {e}")
    raise MqLibraryError("libmq could not be loaded: " + "; ".join(errors))


def _declare(lib: ctypes.CDLL, path: str) -> None:
    missing = [name for name in SIGNATURES if not hasattr(lib, name)]
    if missing:
        raise MqLibraryError(
            f"{path} lacks {', '.join(missing)}: it is older than this binding "
            "(libmq's ABI only grows; use a newer libmq)"
        )
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _check_version(lib: ctypes.CDLL, path: str) -> None:
    version = lib.mq_version()
    major = version >> 16
    if major != EXPECTED_MAJOR:
        text = lib.mq_version_str().decode()
        raise MqLibraryError(
            f"{path} is libmq {text} (major {major}); this binding needs major "
            f"{EXPECTED_MAJOR}"
        )


lib, path = _load()
# mq_version first, on its own: it exists in every libmq.
lib.mq_version.restype = c_uint32
lib.mq_version.argtypes = []
lib.mq_version_str.restype = c_char_p
lib.mq_version_str.argtypes = []
_check_version(lib, path)
_declare(lib, path)

#: The same library through :class:`ctypes.PyDLL`, which keeps the GIL for
#: the call, for the calls of a send's path that neither block nor take a
#: lock a thread waiting for the GIL could hold: setting the body of this
#: thread's scratch message, reading a send result's fields, and freeing
#: it. Each crossing that lets the GIL go hands it to another thread and
#: takes it back, and with 16 threads sending those handoffs were what a
#: send cost: keeping it for these raised the benchmark from 43 % to 57 %
#: of ``mqctl`` (``bench.py``). ``mq_producer_send``, which waits for the
#: broker, goes through ``lib`` and lets the GIL go.
held = ctypes.PyDLL(path)
for _name in ("mq_message_set_body", "mq_send_result_view", "mq_send_result_free"):
    _fn = getattr(held, _name)
    _fn.restype, _fn.argtypes = SIGNATURES[_name]

#: The library's version, as text (``"0.1.0"``).
version: str = lib.mq_version_str().decode()


def out_ptr() -> c_void_p:
    """A fresh ``T *`` for an out-parameter."""
    return c_void_p()


def text(s: Optional[str]) -> Optional[bytes]:
    """A Python string as UTF-8 bytes for a ``const char *`` (None stays None)."""
    if s is None:
        return None
    return s.encode("utf-8")


def string(b: Optional[bytes]) -> Optional[str]:
    """A ``const char *`` result as a Python string (NULL: None)."""
    if b is None:
        return None
    return b.decode("utf-8", "replace")
