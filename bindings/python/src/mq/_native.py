"""Life of a libmq handle on the Python side.

:class:`Native` holds one handle (producer, consumer) and what its wrapper
and the wrapper's ``weakref.finalize`` share, without a reference back to the
wrapper:

- every call takes a *use* (``acquire``/``release``); ``close`` is idempotent,
  refuses new calls at once (``MqClosedError``), calls libmq's ``mq_X_close``
  (which wakes threads blocked in a poll on the handle), and the handle is
  destroyed (``mq_X_destroy``) only when no call is in it any more: libmq's
  one rule, "destroy is the last call and overlaps none", is kept here;
- a handle the program forgot is closed when its wrapper is collected (with a
  ``ResourceWarning``, as for files), and every handle still open is closed
  at interpreter exit (``atexit``), before the interpreter tears down;
- in a child made by ``fork()``, ``os.register_at_fork`` marks everything
  unusable: every call raises ``MqForkedError`` without touching libmq or a
  lock a parent thread may have held, and nothing is closed or destroyed
  there (libmq's threads are not in the child).

:func:`interruptible` runs a call that may block for long (a send, a close)
on a helper thread when it is made on the main thread, and waits for it in
slices of at most 200 ms, so that Ctrl-C (``KeyboardInterrupt``) interrupts
the waiting program within a second. Polls do not need it: they are cut into
200 ms slices themselves.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import warnings
import weakref
from typing import Any, Callable, Dict, Optional, TypeVar

from . import errors

log = logging.getLogger("mq")

T = TypeVar("T")

#: The longest a single libmq wait lasts before Python gets the thread back
#: (signals, KeyboardInterrupt, close): 200 ms.
SLICE_MS = 200
SLICE = SLICE_MS / 1000.0

# Set in a forked child: every handle of the parent is unusable there.
_forked = False
# Whether this process made a libmq client (then a forked child cannot).
_used = False
# Set by the atexit hook: calls run directly, never on a helper thread.
_exiting = False

_OPEN, _CLOSING, _CLOSED, _DESTROYED = range(4)

_live: Dict[int, "Native"] = {}
_live_lock = threading.Lock()


def forked() -> bool:
    """Whether this process was forked from one that used libmq."""
    return _forked


def check_not_forked(what: str) -> None:
    if _forked:
        raise errors.forked(what)


class Native:
    """One libmq handle: uses, close and destroy (see the module doc)."""

    __slots__ = (
        "ptr",
        "what",
        "_close",
        "_destroy_fn",
        "_lock",
        "_uses",
        "_state",
        "_closed",
        "__weakref__",
    )

    def __init__(
        self,
        ptr: int,
        what: str,
        close: Callable[[int], int],
        destroy: Callable[[int], None],
    ) -> None:
        global _used
        _used = True
        self.ptr: Optional[int] = ptr
        self.what = what
        self._close = close
        self._destroy_fn = destroy
        self._lock = threading.Lock()
        # Calls in the handle: one element each. list.append, list.pop and
        # len are atomic under the GIL, so a call takes no lock (16 threads
        # sending through one producer would queue on it).
        self._uses: list = []
        self._state = _OPEN
        self._closed = threading.Event()
        with _live_lock:
            _live[id(self)] = self

    @property
    def is_open(self) -> bool:
        return self._state == _OPEN and not _forked

    def acquire(self, internal: bool = False) -> int:
        """Takes a use of the handle and returns it. ``internal`` uses (the
        binding's own poll threads) are allowed while the close runs, so that
        they can drain what libmq still hands out.

        The use is counted first and the state checked after: a close that
        runs in between either sees the use (and leaves the destroy to the
        last release) or destroyed the handle before, and then this sees
        the state and backs out without touching it."""
        if _forked:
            raise errors.forked(self.what)
        uses = self._uses
        uses.append(None)
        state = self._state
        if state != _OPEN and not (internal and state == _CLOSING):
            self.release()
            raise errors.closed(self.what)
        return self.ptr  # type: ignore[return-value]

    def release(self) -> None:
        uses = self._uses
        uses.pop()
        if self._state == _CLOSED and not uses:
            self._destroy()

    def close(
        self,
        wait: bool = True,
        between: Optional[Callable[[], None]] = None,
        background: bool = False,
    ) -> bool:
        """Closes the handle; True if this call closed it (False: it was
        closed or closing already). New calls are refused at once;
        ``between`` runs after libmq's close and before the handle may be
        destroyed (joining the binding's threads). A second caller waits for
        the first one's close unless ``wait`` is false. ``background``: the
        close (libmq's and ``between``) runs on a new thread."""
        if _forked:
            return False
        with self._lock:
            first = self._state == _OPEN
            if first:
                self._state = _CLOSING
        if not first:
            if wait:
                while not self._closed.wait(SLICE):
                    pass
            return False
        if background and not _exiting:
            threading.Thread(
                target=self._finish_close, args=(between,), name="mq-close", daemon=True
            ).start()
        else:
            self._finish_close(between)
        return True

    def _finish_close(self, between: Optional[Callable[[], None]]) -> None:
        try:
            try:
                self._close(self.ptr)  # type: ignore[arg-type]
            finally:
                if between is not None:
                    between()
        finally:
            self._state = _CLOSED
            if not self._uses:
                self._destroy()
            self._closed.set()

    def _destroy(self) -> None:
        with self._lock:
            if self._state == _DESTROYED:
                return
            self._state = _DESTROYED
            ptr, self.ptr = self.ptr, None
        with _live_lock:
            _live.pop(id(self), None)
            _closers.pop(id(self), None)
        if ptr:
            self._destroy_fn(ptr)


def finalizer(owner: object, native: Native, close: Callable[[], Any]) -> weakref.finalize:
    """Closes ``native`` when ``owner`` is collected while still open, with
    a ResourceWarning. ``close`` must not refer to ``owner``. Not run at exit:
    the atexit hook closes what is still open then."""

    def collect() -> None:
        if _forked or not native.is_open:
            return
        try:
            close()
        except Exception:  # pragma: no cover - reported, never raised in GC
            log.exception("closing a collected mq %s", native.what)
        warnings.warn(
            f"unclosed mq {native.what}: close() it or use it in a with block",
            ResourceWarning,
            stacklevel=2,
        )

    fin = weakref.finalize(owner, collect)
    fin.atexit = False
    return fin


# Closers of open clients, for atexit: id(native) -> weak method.
_closers: Dict[int, "weakref.WeakMethod[Callable[[], Any]]"] = {}


def register_closer(native: Native, close: Callable[[], Any]) -> None:
    """What the atexit hook calls for ``native`` if it is still open then:
    the wrapper's bound ``close`` (which stops the binding's threads too),
    held weakly so that the wrapper can still be collected."""
    with _live_lock:
        _closers[id(native)] = weakref.WeakMethod(close)  # type: ignore[arg-type]


def _close_all_at_exit() -> None:
    global _exiting
    if _forked:
        return
    # No helper threads from now on (Python 3.12+ refuses to start threads
    # at shutdown): closes run on this thread.
    _exiting = True
    with _live_lock:
        natives = list(_live.values())
    for native in reversed(natives):
        if not native.is_open:
            continue
        ref = _closers.get(id(native))
        close = ref() if ref is not None else None
        try:
            if close is not None:
                close()
            else:
                native.close()
        except BaseException:  # pragma: no cover - best effort at exit
            log.exception("closing mq %s at exit", native.what)


atexit.register(_close_all_at_exit)


def _after_fork_in_child() -> None:
    global _forked, _pool
    if not _used:
        return
    _forked = True
    # Nothing of the parent's is closed or destroyed here, and the parent's
    # threads (helpers, pollers) are gone: forget them.
    _live.clear()
    _closers.clear()
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Call:
    """One call handed to a helper thread: its outcome and a lock released
    when it is there (lighter than a Future: one lock, no condition)."""

    __slots__ = ("fn", "args", "result", "error", "done")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn = fn
        self.args = args
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Lock()
        self.done.acquire()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:
            self.error = e
        finally:
            self.fn = self.args = None  # type: ignore[assignment]
            self.done.release()

    def wait(self) -> Any:
        """The outcome, waited for in slices of at most 200 ms: a signal
        handler (KeyboardInterrupt) runs between them, if not during."""
        done = self.done
        while not done.acquire(timeout=SLICE):
            pass
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result


class _Pool:
    """Daemon threads that run the main thread's long calls (see
    :func:`interruptible`). Idle threads end after 30 s."""

    def __init__(self) -> None:
        self._queue: "queue.SimpleQueue[_Call]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[..., Any], args: tuple) -> _Call:
        call = _Call(fn, args)
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._queue.put(call)
        if spawn:
            threading.Thread(target=self._work, name="mq-call", daemon=True).start()
        return call

    def _work(self) -> None:
        while True:
            try:
                call = self._queue.get(timeout=30)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue
            call.run()
            del call
            with self._lock:
                self._idle += 1


_pool = _Pool()
#: The main thread's id: the thread KeyboardInterrupt is raised in.
main_ident = threading.main_thread().ident


def interruptible(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``: directly on any thread but the main one; on the main
    thread on a helper thread, waited for in slices so that Ctrl-C raises
    KeyboardInterrupt within a second (the call itself then ends on the
    helper thread, its result dropped)."""
    if _forked or _exiting or threading.get_ident() != main_ident:
        return fn(*args)
    return _pool.submit(fn, args).wait()  # type: ignore[no-any-return]
