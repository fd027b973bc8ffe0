"""Exceptions: :class:`MqError` and one subclass per libmq status.

Every failing libmq call raises the subclass of its status, carrying the
status ``code``, its ``name`` (``"MQ_ERR_TIMEOUT"``), the detail ``message``
libmq recorded for the failing thread, and ``broker_code`` (the broker's
response code after ``MQ_ERR_BROKER``, else 0).

The subclasses are named after the status: ``MQ_ERR_NO_ROUTE`` is
:class:`MqNoRouteError`. Their codes are not written down here: they are read
from the library's own table (``mq_status_name``) at import, so the binding
cannot drift from libmq. The classes below are declared for type checkers and
``except`` clauses; a status that a newer libmq adds gets a class made at
import (``mq.errors.by_name["MQ_ERR_..."]``), and a code the table does not
know raises plain :class:`MqError`.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib


class MqError(Exception):
    """A libmq call failed.

    Attributes:
        code: the status code (``MQ_ERR_*``), or None for errors the binding
            raises without a status.
        name: the status name, ``"MQ_ERR_TIMEOUT"``.
        message: the detail (libmq's ``mq_last_error()`` of the failing call).
        broker_code: the broker's response code after ``MQ_ERR_BROKER``, else 0.
    """

    #: The status this class stands for; set from the library's table.
    status_code: Optional[int] = None
    status_name: str = "MQ_ERR"

    def __init__(
        self,
        code: Optional[int] = None,
        name: Optional[str] = None,
        message: str = "",
        broker_code: int = 0,
    ) -> None:
        if code is None:
            code = type(self).status_code
        if name is None:
            name = type(self).status_name
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message
        self.broker_code = broker_code

    def __str__(self) -> str:
        text = f"{self.name}"
        if self.code is not None:
            text += f" ({self.code})"
        if self.message:
            text += f": {self.message}"
        if self.broker_code:
            text += f" [broker code {self.broker_code}]"
        return text


# Declared for type checkers and `except`; each is bound to its status code
# below, from the library's table.
class MqNullError(MqError):
    """A required pointer argument was NULL (a binding bug)."""


class MqInvalidArgError(MqError, ValueError):
    """An argument was not acceptable (empty topic or body, bad enum value...)."""


class MqConfigError(MqError, ValueError):
    """A configuration key is unknown or its value invalid; the message names it."""


class MqTimeoutError(MqError, TimeoutError):
    """No answer within the time allowed."""


class MqTransportError(MqError, ConnectionError):
    """No connection could be made, or it broke before the answer came."""


class MqBrokerError(MqError):
    """The broker or NameServer refused; see ``broker_code``."""


class MqNoRouteError(MqError):
    """No route for the topic."""


class MqNoNamesrvError(MqError):
    """No NameServer configured, or none answered."""


class MqDecodeError(MqError):
    """An answer could not be decoded."""


class MqClosedError(MqError):
    """The object was closed."""


class MqStateError(MqError):
    """Not allowed in the object's current state."""


class MqQueueFullError(MqError):
    """Too many async sends in flight (``max_inflight_async``)."""


class MqForkedError(MqError):
    """Used in a process forked from the one that created the object.

    Create clients in the process that uses them, after forking.
    """


class MqIoError(MqError, OSError):
    """A local operation (offsets file, thread start) failed."""


class MqUnknownError(MqError):
    """A failure this libmq version has no status for."""


class MqPanicError(MqError):
    """A bug in libmq (a Rust panic caught at the boundary). The producer or
    consumer it ran on is unusable afterwards: close it and make a new one."""


def class_name(status_name: str) -> str:
    """``"MQ_ERR_NO_ROUTE"`` -> ``"MqNoRouteError"``."""
    stem = status_name[len("MQ_ERR_"):] if status_name.startswith("MQ_ERR_") else status_name
    return "Mq" + "".join(part.capitalize() for part in stem.lower().split("_")) + "Error"


#: Status code -> exception class, from the library's table.
by_code: Dict[int, Type[MqError]] = {}
#: Status name -> exception class.
by_name: Dict[str, Type[MqError]] = {}

# The highest status number looked up in the library's table at import.
_SCAN = 1024


def _bind_table() -> None:
    module = globals()
    lib = _lib.lib
    for code in range(1, _SCAN):
        raw = lib.mq_status_name(code)
        name = raw.decode() if raw else ""
        if not name.startswith("MQ_ERR_") or name == "MQ_ERR_UNKNOWN_STATUS":
            continue
        cls_name = class_name(name)
        found = module.get(cls_name)
        if isinstance(found, type) and issubclass(found, MqError):
            cls: Type[MqError] = found
        else:
            doc = (lib.mq_status_str(code) or b"").decode()
            cls = type(cls_name, (MqError,), {"__doc__": doc, "__module__": __name__})
            module[cls_name] = cls
        cls.status_code = code
        cls.status_name = name
        by_code[code] = cls
        by_name[name] = cls


_bind_table()
_BROKER = MqBrokerError.status_code


def from_status(code: int, message: str = "", broker_code: int = 0) -> MqError:
    """The exception for a status ``code`` (not MQ_OK)."""
    cls = by_code.get(code)
    if cls is None:
        raw = _lib.lib.mq_status_name(code)
        return MqError(code, raw.decode() if raw else "MQ_ERR_UNKNOWN_STATUS", message, broker_code)
    return cls(code, cls.status_name, message, broker_code)


def last_error(code: int) -> MqError:
    """The exception for a call that just returned ``code`` on this thread:
    reads libmq's thread-local detail (and broker code) at once."""
    lib = _lib.lib
    detail = lib.mq_last_error()
    broker = lib.mq_last_error_broker_code() if code == _BROKER else 0
    return from_status(code, detail.decode("utf-8", "replace") if detail else "", broker)



def check(code: int) -> None:
    """Raises the status's exception unless ``code`` is MQ_OK."""
    if code:
        raise last_error(code)


def closed(what: str) -> MqClosedError:
    return MqClosedError(message=f"the {what} is closed")


def forked(what: str) -> MqForkedError:
    return MqForkedError(
        message=f"this {what} was created in the process this one was forked from; "
        "create clients after forking, in the process that uses them"
    )
