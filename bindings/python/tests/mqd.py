"""Running ``mqd standalone`` for the Python tests and the benchmark: free
loopback ports, a data directory, readiness once the broker has registered
with the NameServer (as tests/e2e/support/mqd.rs waits), SIGTERM to stop.
Plain Python (no pytest), so that bench.py can use it too."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Sequence, Tuple


class MqdMissing(RuntimeError):
    """The mqd binary is not where it was looked for."""


#: Store files small enough for a test directory (as tests/e2e's SMALL_STORE).
SMALL_STORE = [
    ("mappedFileSizeCommitLog", "1048576"),
    ("mappedFileSizeConsumeQueue", "6000"),
    ("maxIndexNum", "2000"),
    ("maxHashSlotNum", "500"),
]
#: Redeliver retried messages after 1 s instead of 10 s (delay level 3, the
#: first retry's): tests wait for less.
FAST_RETRIES = [("messageDelayLevel", " ".join(["1s"] * 18))]
#: Check half messages soon (tests/e2e/client_transaction.rs does the same).
FAST_TRANSACTIONS = [
    ("transactionCheckInterval", "300"),
    ("transactionTimeOut", "500"),
]

READY_TIMEOUT = 30.0
REGISTER_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


# Ports come from below the kernel's ephemeral range, which only explicit
# binds use (an outgoing connection may take an ephemeral port between the
# probe and mqd's bind), and none is handed out twice in one process (a probe
# of port 0 gives the port back, so the next probe could get it again).
_LOWEST = 12000
_handed_out: set = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        # As mqd's listeners do, so that a port in TIME_WAIT counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _reserve(offsets: Sequence[int]) -> int:
    high = max(_ephemeral_low(), _LOWEST + 1000)
    span = high - _LOWEST - 8
    start = (os.getpid() * 7919) % span
    for step in range(span):
        port = _LOWEST + 4 + (start + step) % span
        ports = [port + o for o in offsets]
        if any(p in _handed_out for p in ports):
            continue
        if all(_bindable(p) for p in ports):
            _handed_out.update(ports)
            return port
    raise RuntimeError(f"no free loopback ports between {_LOWEST} and {high}")


def free_port() -> int:
    """A free loopback port."""
    return _reserve([0])


def free_broker_port() -> int:
    """A port P with P-2 (the VIP channel) and P+1 (HA) free too."""
    return _reserve([0, -2, 1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def route_of(namesrv_port: int, topic: str) -> int:
    """The NameServer's response code to GET_ROUTEINFO_BY_TOPIC (105) for
    ``topic``, over RocketMQ's remoting protocol with a JSON header."""
    header = json.dumps(
        {
            "code": 105,
            "language": "PYTHON",
            "version": 0,
            "opaque": 1,
            "flag": 0,
            "extFields": {"topic": topic},
        }
    ).encode()
    frame = struct.pack(">II", 4 + len(header), len(header)) + header
    with socket.create_connection(("127.0.0.1", namesrv_port), timeout=2) as s:
        s.sendall(frame)
        (length,) = struct.unpack(">I", _recv_exact(s, 4))
        data = _recv_exact(s, length)
    (word,) = struct.unpack(">I", data[:4])
    hlen = word & 0xFFFFFF
    return int(json.loads(data[4 : 4 + hlen])["code"])


class Mqd:
    """A running ``mqd standalone``."""

    def __init__(
        self,
        binary: Path,
        directory: Path,
        settings: Sequence[Tuple[str, str]] = SMALL_STORE + FAST_RETRIES + FAST_TRANSACTIONS,
    ) -> None:
        if not binary.exists():
            raise MqdMissing(f"mqd not found at {binary}: build it (cargo build -p mq-daemon) or set MQD")
        self.dir = directory
        self.namesrv_port = free_port()
        self.port = free_broker_port()
        self.namesrv = f"127.0.0.1:{self.namesrv_port}"
        self.log_path = directory / "mqd.log"
        args = [
            str(binary),
            "standalone",
            "--data",
            str(directory / "data"),
            "--namesrv-listen",
            self.namesrv,
            "--listen-port",
            str(self.port),
        ]
        for key, value in settings:
            args += [f"--{key}", value]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for port in (self.namesrv_port, self.port, self.port - 2):
            while not _accepts(port):
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"mqd exited ({self.process.returncode}) before listening on "
                        f"{port}; log:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mqd is not listening on {port}; log:\n{self.log_tail()}")
                time.sleep(0.02)
        deadline = time.monotonic() + REGISTER_TIMEOUT
        while True:
            try:
                if route_of(self.namesrv_port, "TBW102") == 0:
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the broker did not register with the NameServer; log:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 200) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


